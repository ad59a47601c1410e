package check

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"

	"github.com/andybalholm/brotli"
	"github.com/klauspost/compress/flate"
	"github.com/klauspost/compress/gzip"
	"github.com/klauspost/compress/zlib"
	"github.com/klauspost/compress/zstd"
)

// A body is undone of the content codings a browser accepts (RFC 9110
// section 8.4: gzip, deflate; br, RFC 7932; zstd, RFC 8878) before the cap
// and the pattern apply, whatever the request asked for: a CDN serving
// pre-compressed objects answers gzip to everyone.
const (
	// maxCodings bounds the codings of one body: each costs a decoder's
	// state, and no server applies more than two.
	maxCodings = 4
	// zstdMaxWindow is the window a zstd decoder of HTTP content must
	// support and may refuse beyond (RFC 9659 section 3); without it a
	// stream could ask klauspost/compress for 512 MiB.
	zstdMaxWindow = 8 << 20
	// wireSlack is what an encoded body may take on the wire beyond its
	// cap: past cap + cap/8 + wireSlack the encoded bytes say little more
	// (incompressible data grows by far less under any coding), and a
	// stream of empty blocks would otherwise be read until the timeout. It
	// holds a zstd block twice over: the decoder yields nothing before it
	// has a whole block, up to 128 KiB when the data did not compress (RFC
	// 8878 section 3.1.1.2.4), plus headers and the read-ahead of buffers.
	wireSlack = 256 << 10
)

// unsupportedError is the error of a Content-Encoding with more codings
// than are decoded.
type unsupportedError struct {
	header  string
	codings int
}

func (e *unsupportedError) Error() string {
	return fmt.Sprintf("Content-Encoding %q has %d codings, more than %d", e.header, e.codings, maxCodings)
}

// decodeError is a body that is not what its coding says.
type decodeError struct {
	coding string
	err    error
}

func (e *decodeError) Error() string { return "decode " + e.coding + " body: " + e.err.Error() }
func (e *decodeError) Unwrap() error { return e.err }

// errWireCap ends the read of an encoded body longer than its bound.
var errWireCap = errors.New("the encoded body is longer than max_body_bytes allows")

// capReader reads at most limit bytes of r and then tells, by reading one
// more, whether r had more (more is then set and errMore returned). So a
// cap never needs limit+1, which overflows at the int64 maximum.
type capReader struct {
	r       io.Reader
	limit   int64
	n       int64
	more    bool
	errMore error // io.EOF for the content read; errWireCap for the wire
	// failed is r's error other than io.EOF, when r is the connection: a
	// timeout or a reset, not a malformed body.
	failed error
}

func (c *capReader) Read(p []byte) (int, error) {
	if c.more {
		return 0, c.errMore
	}
	if c.n >= c.limit {
		var one [1]byte
		n, err := io.ReadFull(c.r, one[:])
		if n > 0 {
			c.more = true
			return 0, c.errMore
		}
		return 0, c.note(err)
	}
	if left := c.limit - c.n; int64(len(p)) > left {
		p = p[:left]
	}
	n, err := c.r.Read(p)
	c.n += int64(n)
	return n, c.note(err)
}

func (c *capReader) note(err error) error {
	if err != nil && err != io.EOF && c.failed == nil {
		c.failed = err
	}
	return err
}

// body reads a response body within a cap: wire counts what comes off the
// connection, content what the codings decode to.
type body struct {
	wire, content *capReader
	closers       []func()
	// undecoded is the coding, unknown to the prober, that left the body
	// as sent; empty when the body was decoded or had no coding.
	undecoded string
}

// newBody prepares reading resp's body, decoding its Content-Encoding, at
// most limit decoded bytes. The error is an *unsupportedError.
func newBody(resp *http.Response, limit int64) (*body, error) {
	header := resp.Header.Values("Content-Encoding")
	var (
		codings   []string
		undecoded string
	)
scan:
	for _, line := range header {
		for c := range strings.SplitSeq(line, ",") {
			switch c = strings.ToLower(strings.TrimSpace(c)); c {
			case "", "identity", "none":
				// none is no coding, but some servers send it.
				continue
			case "x-gzip": // RFC 9110 section 8.4.1.3
				c = "gzip"
			case "gzip", "deflate", "br", "zstd":
			default:
				// A browser passes a body with a coding it does not know
				// through as sent, not decoding the others either
				// (Chromium's URLRequestHttpJob::SetUpSourceStream):
				// servers label plain bodies "utf-8" or "text", and such a
				// site works in a browser, so its check is up.
				codings, undecoded = nil, c
				break scan
			}
			codings = append(codings, c)
		}
	}
	if len(codings) > maxCodings {
		return nil, &unsupportedError{header: strings.Join(header, ", "), codings: len(codings)}
	}
	b := &body{wire: &capReader{r: resp.Body, limit: limit, errMore: errWireCap}, undecoded: undecoded}
	if len(codings) > 0 {
		b.wire.limit = wireLimit(limit)
	}
	var r io.Reader = b.wire
	// Codings are listed in the order they were applied: undo the last
	// first.
	for i := len(codings) - 1; i >= 0; i-- {
		r = &layer{coding: codings[i], src: r, b: b}
	}
	b.content = &capReader{r: r, limit: limit, errMore: io.EOF}
	return b, nil
}

// wireLimit is the bound of an encoded body on the wire, saturating
// instead of overflowing.
func wireLimit(limit int64) int64 {
	const maxInt64 = 1<<63 - 1
	if limit > (maxInt64-wireSlack)/9*8 {
		return maxInt64
	}
	return limit + limit/8 + wireSlack
}

// truncated reports whether reading stopped at the cap.
func (b *body) truncated() bool { return b.content.more || b.wire.more }

// readError sorts an error of reading the body: nil when it only ended
// the read at the cap, the wire's error when the connection failed, else
// an error naming the coding that failed.
func (b *body) readError(err error) error {
	switch {
	case err == nil || b.truncated():
		// Past the wire's bound a decoder may fail in any way.
		return nil
	case b.wire.failed != nil:
		return b.wire.failed
	}
	return err
}

func (b *body) close() {
	for _, c := range b.closers {
		c()
	}
}

// layer undoes one coding, creating its decoder on the first read: the
// decoders read their headers as they are made, and an empty body (a HEAD,
// a 204) is empty whatever its Content-Encoding says.
type layer struct {
	coding string
	src    io.Reader
	b      *body
	dec    io.Reader
	err    error
}

func (l *layer) Read(p []byte) (int, error) {
	if l.dec == nil && l.err == nil {
		l.dec, l.err = l.open()
	}
	if l.err != nil {
		return 0, l.err
	}
	n, err := l.dec.Read(p)
	return n, l.wrap(err)
}

func (l *layer) open() (io.Reader, error) {
	br := bufio.NewReader(l.src)
	head, err := br.Peek(2)
	if len(head) == 0 {
		if err == io.EOF {
			return eofReader{}, nil
		}
		return nil, l.wrap(err)
	}
	var dec io.Reader
	switch l.coding {
	case "gzip":
		dec, err = gzip.NewReader(br)
	case "deflate":
		// "deflate" is zlib (RFC 1950), but some servers send raw
		// deflate (RFC 1951), and browsers accept both. The zlib header
		// tells them apart: method 8, a window of at most 32 KiB, the
		// first two bytes a multiple of 31 (RFC 1950 section 2.2).
		if len(head) == 2 && head[0]&0x0f == 8 && head[0]>>4 <= 7 && (uint16(head[0])<<8|uint16(head[1]))%31 == 0 {
			dec, err = zlib.NewReader(br)
		} else {
			dec = flate.NewReader(br)
		}
	case "br":
		dec = brotli.NewReader(br)
	case "zstd":
		var z *zstd.Decoder
		// One goroutine-free decoder per body, its window as RFC 9659
		// bounds it.
		z, err = zstd.NewReader(br, zstd.WithDecoderConcurrency(1), zstd.WithDecoderLowmem(true),
			zstd.WithDecoderMaxWindow(zstdMaxWindow))
		if err == nil {
			l.b.closers = append(l.b.closers, z.Close)
			dec = z
		}
	}
	if err != nil {
		return nil, l.wrap(err)
	}
	return dec, nil
}

// wrap names the coding in an error of its decoder, unless the error came
// from below: from the connection or from the coding applied after it.
func (l *layer) wrap(err error) error {
	if err == nil || err == io.EOF || l.b.wire.failed != nil || l.b.wire.more {
		return err
	}
	var de *decodeError
	if errors.As(err, &de) {
		return err
	}
	return &decodeError{coding: l.coding, err: err}
}

type eofReader struct{}

func (eofReader) Read([]byte) (int, error) { return 0, io.EOF }
