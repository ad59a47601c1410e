// Package badge draws SVG badges in the shields.io "flat" style: a grey
// label on the left, a coloured message on the right. The layout follows
// shields' badge-maker (github.com/badges/shields, badge-maker/lib), with
// text widths from a table of Verdana 11px advances; every text is
// XML-escaped.
package badge
