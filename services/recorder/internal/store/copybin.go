package store

import (
	"bytes"
	"context"
	"encoding/binary"
	"fmt"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
)

// copyRaw writes new events into check_results with COPY in PostgreSQL's
// binary format, encoded here directly: pgx's generic CopyFrom looks up an
// encode plan for every value, which cost about 1.5 us an event, a quarter
// of the recorder's CPU. Format: PostgreSQL docs, "COPY", "Binary Format";
// timestamptz is microseconds since 2000-01-01 UTC.
func copyRaw(ctx context.Context, tx pgx.Tx, events []*Event) error {
	var e rawEncoder
	e.buf.Grow(len(events) * 200)
	e.buf.WriteString("PGCOPY\n\xff\r\n\x00")
	e.int32(0) // flags
	e.int32(0) // header extension length
	for _, ev := range events {
		e.int16(int16(len(rawColumns)))
		e.bytes(ev.EventID[:])
		e.text(clean(ev.TargetID))
		e.timestamptz(ev.CheckedAt)
		e.text(outcome(ev))
		e.optText(ev.FailureKind)
		e.int64(ev.ResponseTime.Microseconds())
		for _, d := range []*time.Duration{ev.DNS, ev.Connect, ev.TLSHandshake, ev.TimeToFirstByte} {
			if d == nil {
				e.null()
			} else {
				e.int64(d.Microseconds())
			}
		}
		if ev.StatusCode != 0 {
			e.int32field(ev.StatusCode)
		} else {
			e.null()
		}
		e.int64(ev.BytesRead)
		e.bool(ev.BodyTruncated)
		if ev.HasContentCheck {
			e.text(clean(ev.ContentPattern))
			e.bool(ev.ContentMatched)
		} else {
			e.null()
			e.null()
		}
		if ev.TLSCertExpiresAt.IsZero() {
			e.null()
		} else {
			e.timestamptz(ev.TLSCertExpiresAt)
		}
		e.int32field(ev.Redirects)
		e.optText(ev.Error)
		e.optText(ev.ProberInstance)
		e.optText(ev.ProberRegion)
		e.optText(ev.Protocol)
		if ev.DecodedBytes == nil {
			e.null()
		} else {
			e.int64(*ev.DecodedBytes)
		}
		if ev.ScheduledAt.IsZero() {
			e.null()
		} else {
			e.timestamptz(ev.ScheduledAt)
		}
	}
	e.int16(-1) // trailer
	sql := "COPY check_results (" + strings.Join(rawColumns, ", ") + ") FROM STDIN (FORMAT binary)"
	tag, err := tx.Conn().PgConn().CopyFrom(ctx, bytes.NewReader(e.buf.Bytes()), sql)
	if err != nil {
		return err
	}
	if tag.RowsAffected() != int64(len(events)) {
		return fmt.Errorf("copied %d rows of %d", tag.RowsAffected(), len(events))
	}
	return nil
}

// postgresEpoch is where PostgreSQL's binary timestamps count from.
var postgresEpoch = time.Date(2000, 1, 1, 0, 0, 0, 0, time.UTC).UnixMicro()

type rawEncoder struct {
	buf bytes.Buffer
	b   [8]byte
}

func (e *rawEncoder) int16(v int16) {
	binary.BigEndian.PutUint16(e.b[:2], uint16(v))
	e.buf.Write(e.b[:2])
}

func (e *rawEncoder) int32(v int32) {
	binary.BigEndian.PutUint32(e.b[:4], uint32(v))
	e.buf.Write(e.b[:4])
}

// Each field: its length in bytes (-1 for NULL), then its bytes.
func (e *rawEncoder) null() { e.int32(-1) }

func (e *rawEncoder) bytes(b []byte) {
	e.int32(int32(len(b)))
	e.buf.Write(b)
}

func (e *rawEncoder) text(s string) {
	e.int32(int32(len(s)))
	e.buf.WriteString(s)
}

func (e *rawEncoder) optText(s string) {
	if s == "" {
		e.null()
		return
	}
	e.text(clean(s))
}

func (e *rawEncoder) int64(v int64) {
	e.int32(8)
	binary.BigEndian.PutUint64(e.b[:], uint64(v))
	e.buf.Write(e.b[:])
}

func (e *rawEncoder) int32field(v int32) {
	e.int32(4)
	e.int32(v)
}

func (e *rawEncoder) bool(v bool) {
	e.int32(1)
	if v {
		e.buf.WriteByte(1)
	} else {
		e.buf.WriteByte(0)
	}
}

func (e *rawEncoder) timestamptz(t time.Time) { e.int64(t.UnixMicro() - postgresEpoch) }
