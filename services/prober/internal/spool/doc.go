// Package spool is the prober's bounded on-disk buffer in front of Kafka: an
// append-only log of already-encoded Kafka records (key and Confluent-framed
// value) in segment files, read back oldest first and removed only once
// Kafka acknowledged them.
//
// # Files
//
// A spool directory holds segment files named by a growing number
// (00000000000000000042.seg), a cursor file naming the first record not yet
// acknowledged, a topic file naming the Kafka topic the records belong to,
// and a lock file that keeps a second prober out. Each record is framed as
//
//	length    uint32 big-endian, bytes after the 8-byte frame header
//	crc       uint32 big-endian, CRC-32C (Castagnoli) of those bytes
//	appended  int64 big-endian, Unix nanoseconds
//	key len   uvarint
//	key, value
//
// The writer appends each batch with one write(2), so a killed process
// loses only what it had not handed to the kernel yet; Sync (every
// -spool-sync) fsyncs the active segment, so a power loss costs at most
// one sync interval. Acknowledgements are tracked in a window of records
// handed out: the cursor follows its low-water mark, segments below it are
// deleted, and after a crash only records acknowledged since the last
// Sync are delivered again (the recorder's event-ID key makes that
// harmless).
//
// # Damage
//
// Open checks every record of every segment. A segment whose first record
// is unreadable is renamed NAME.corrupt and skipped; a damaged or torn
// tail (a crash mid-write, a full disk) is skipped from the first bad
// record on; one that cannot be opened is skipped. Each is logged and
// counted in Stats.CorruptSegments; nothing is retried, so a bad file
// never turns into a crash loop.
//
// # Bounds
//
// Beyond MaxBytes, Append deletes the oldest segments and reports how many
// records it dropped with them. A write error (ENOSPC) leaves the spool
// Unavailable for a while: the caller falls back to memory and counts its
// drops, and the next Append after the pause tries the disk again.
//
// The log is written here rather than taken from a library: of the
// candidates, tidwall/wal has no per-record checksum and refuses to open a
// log with a torn tail, rosedblabs/wal checksums blocks but cannot remove
// from the front or cap its size, nsqio/go-diskqueue and joncrlsn/dque
// remove an item when it is read rather than when it is acknowledged and
// carry no checksum. The framing follows the LevelDB/Prometheus WAL habit
// of a CRC-32C per record.
package spool
