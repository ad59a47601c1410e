package spool

import (
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"
)

// ErrUnavailable is returned by Append while the spool pauses after a write
// error (a full disk); it wraps that error.
var ErrUnavailable = errors.New("spool unavailable")

// ErrLocked is returned by Open when another process holds the directory.
var ErrLocked = errors.New("spool directory in use by another process")

const (
	frameHeader = 8 // length + crc
	// maxRecord bounds a record's length field: a larger one is damage,
	// not a record (a CheckResult is a few hundred bytes).
	maxRecord = 16 << 20
	segSuffix = ".seg"
	// retryPause is how long Append refuses after a write error before it
	// tries the disk again.
	retryPause = 10 * time.Second
)

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// segFile is the active segment as the writer uses it (an *os.File).
type segFile interface {
	io.Writer
	Truncate(size int64) error
	Sync() error
	Close() error
}

// Options configure a Spool.
type Options struct {
	Dir string
	// Topic the records are for; Open refuses a directory holding records
	// for another topic.
	Topic string
	// MaxBytes caps the segment files; beyond it the oldest are deleted.
	MaxBytes int64
	// SegmentBytes is the size at which a segment is closed and a new one
	// started; 0 takes MaxBytes/16 between 64 KiB and 64 MiB.
	SegmentBytes int64
	// Window bounds the records handed out by Next and not yet
	// acknowledged, counted from the oldest unacknowledged (at least 1).
	Window int
	Logger *slog.Logger
	Now    func() time.Time
}

// Entry is a record to append.
type Entry struct{ Key, Value []byte }

// Record is a record handed out by Next; pass its Ticket to Ack once Kafka
// has it.
type Record struct {
	Key, Value []byte
	Appended   time.Time
	Ticket     uint64
}

type segment struct {
	id      uint64
	path    string
	size    int64 // bytes holding valid records
	disk    int64 // bytes of the file (more than size after damage)
	records int
}

// slot is a record handed out and not yet passed by the low-water mark.
type slot struct {
	seg        uint64
	start, end int64
	at         int64
	acked      bool
}

// Stats describe the spool.
type Stats struct {
	Bytes   int64 // segment files on disk
	Records int64 // records not yet acknowledged
	// Oldest is when the oldest unacknowledged record was appended (zero
	// when none).
	Oldest          time.Time
	CorruptSegments int64
	// Err is the write error while the spool is unavailable.
	Err error
}

// Spool is an on-disk FIFO of records. Its methods are safe for concurrent
// use: one appender and one reader are the intended users.
type Spool struct {
	o       Options
	log     *slog.Logger
	lock    *os.File
	notify  chan struct{}
	openSeg func(name string) (segFile, error) // tests make writes fail

	mu        sync.Mutex
	segs      []*segment // oldest first; the last is the active one
	w         segFile    // active segment, for appending
	wbuf      []byte
	dirty     bool // written since the last fsync
	dirDirty  bool // segments created or removed since the last fsync
	broken    error
	retryAt   time.Time
	bytes     int64
	pending   int64
	corrupt   int64
	lastCur   string // cursor last written
	closed    bool
	nextSegID uint64

	// reader
	rseg  *segment
	rf    *os.File
	roff  int64
	rread int // records of rseg read (or acknowledged before Open)
	buf   []byte
	bufAt int64 // file offset of buf[0]

	// window
	slots       []slot
	head, n     int
	firstTicket uint64 // ticket of slots[head]
}

// Open opens or creates the spool in o.Dir, checking every record of the
// segments it finds. Records a previous process spooled and did not see
// acknowledged are handed out again by Next.
func Open(o Options) (*Spool, error) {
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.Window < 1 {
		o.Window = 1
	}
	if o.MaxBytes <= 0 {
		return nil, fmt.Errorf("spool %s: MaxBytes must be positive", o.Dir)
	}
	if o.SegmentBytes <= 0 {
		o.SegmentBytes = min(max(o.MaxBytes/16, 64<<10), 64<<20)
	}
	if err := os.MkdirAll(o.Dir, 0o750); err != nil {
		return nil, fmt.Errorf("spool: %w", err)
	}
	s := &Spool{
		o:      o,
		log:    o.Logger.With("spool", o.Dir),
		notify: make(chan struct{}, 1),
		slots:  make([]slot, o.Window),
		buf:    make([]byte, 0, 256<<10),
		openSeg: func(name string) (segFile, error) {
			return os.OpenFile(name, os.O_CREATE|os.O_EXCL|os.O_WRONLY|os.O_APPEND, 0o640)
		},
	}
	lock, err := os.OpenFile(filepath.Join(o.Dir, "lock"), os.O_CREATE|os.O_RDWR, 0o640)
	if err != nil {
		return nil, fmt.Errorf("spool: %w", err)
	}
	if err := syscall.Flock(int(lock.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		lock.Close()
		return nil, fmt.Errorf("%w: %s (flock: %v); give each prober its own -spool-dir", ErrLocked, o.Dir, err)
	}
	s.lock = lock
	if err := s.load(); err != nil {
		lock.Close()
		return nil, err
	}
	return s, nil
}

// load scans the directory, checks the topic, the segments and the cursor,
// and starts a new active segment.
func (s *Spool) load() error {
	topicFile := filepath.Join(s.o.Dir, "topic")
	entries, err := os.ReadDir(s.o.Dir)
	if err != nil {
		return fmt.Errorf("spool: %w", err)
	}
	var ids []uint64
	for _, e := range entries {
		name, ok := strings.CutSuffix(e.Name(), segSuffix)
		if !ok || e.IsDir() {
			continue
		}
		id, err := strconv.ParseUint(name, 10, 64)
		if err != nil {
			s.log.Warn("spool: ignoring a file that is not a segment", "file", e.Name())
			continue
		}
		ids = append(ids, id)
	}
	slices.Sort(ids)
	oldTopic, _ := os.ReadFile(topicFile)
	curSeg, curOff := s.readCursor()
	// New segments are numbered past the cursor even when the segments it
	// names are gone: otherwise the next start would take them for
	// acknowledged ones and delete them.
	s.nextSegID = curSeg + 1

	for _, id := range ids {
		s.nextSegID = max(s.nextSegID, id+1)
		path := filepath.Join(s.o.Dir, segName(id))
		if id < curSeg {
			// Fully acknowledged; the process died before deleting it.
			os.Remove(path)
			continue
		}
		seg := s.scan(id, path)
		if seg == nil {
			continue
		}
		skipped := 0
		if id == curSeg {
			skipped = seg.countBefore(curOff, s)
		}
		if skipped == seg.records {
			// Everything acknowledged: nothing to keep.
			os.Remove(path)
			continue
		}
		s.segs = append(s.segs, seg)
		s.bytes += seg.disk
		s.pending += int64(seg.records - skipped)
		if s.rseg == nil {
			s.rseg = seg
			s.rread = skipped
			if skipped > 0 {
				s.roff = s.offsetAfter(seg, skipped)
			}
		}
	}
	// An empty file names no topic: a crash or power loss while it was
	// written, which must not keep the prober from starting.
	if s.pending > 0 && len(oldTopic) > 0 && string(oldTopic) != s.o.Topic {
		return fmt.Errorf("spool %s holds %d records for topic %q, not %q: deliver them with -topic %s or remove the directory",
			s.o.Dir, s.pending, oldTopic, s.o.Topic, oldTopic)
	}
	if string(oldTopic) != s.o.Topic {
		if err := writeFileSync(topicFile, []byte(s.o.Topic)); err != nil {
			return fmt.Errorf("spool: %w", err)
		}
	}
	if s.nextSegID == 0 {
		s.nextSegID = 1
	}
	if err := s.rotate(); err != nil {
		return err
	}
	if s.rseg == nil {
		s.rseg = s.segs[0]
	}
	if s.pending > 0 {
		s.log.Info("spool: found records to deliver", "records", s.pending, "bytes", s.bytes, "segments", len(s.segs)-1)
	}
	return nil
}

// writeFileSync replaces name with data through a synced temporary file, so
// that a crash leaves the old contents or the new, never a torn file.
func writeFileSync(name string, data []byte) error {
	tmp := name + ".tmp"
	f, err := os.OpenFile(tmp, os.O_CREATE|os.O_TRUNC|os.O_WRONLY, 0o640)
	if err != nil {
		return err
	}
	_, err = f.Write(data)
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return err
	}
	return os.Rename(tmp, name)
}

func segName(id uint64) string { return fmt.Sprintf("%020d%s", id, segSuffix) }

// scan checks every record of a segment file. It returns nil for a file
// with no valid record (renamed NAME.corrupt when it has bytes) or one that
// cannot be opened.
func (s *Spool) scan(id uint64, path string) *segment {
	f, err := os.Open(path)
	if err == nil {
		defer f.Close()
	}
	var fi os.FileInfo
	if err == nil {
		fi, err = f.Stat()
	}
	if err != nil {
		// Skipped, not fatal: a start that fails on it would fail again,
		// a crash loop.
		s.corrupt++
		s.log.Error("spool: segment cannot be opened; skipped", "file", path, "err", err)
		return nil
	}
	seg := &segment{id: id, path: path, disk: fi.Size()}
	r := &recordReader{f: f, limit: fi.Size(), buf: make([]byte, 0, 256<<10)}
	var bad error
	for seg.size < fi.Size() {
		n, _, err := r.next(seg.size)
		if err != nil {
			bad = err
			break
		}
		seg.size += n
		seg.records++
	}
	switch {
	case fi.Size() == 0:
		os.Remove(path)
		return nil
	case seg.records == 0:
		s.corrupt++
		s.log.Error("spool: segment unreadable, skipped and renamed", "file", path, "bytes", fi.Size(),
			"renamed", path+".corrupt", "err", bad)
		if err := os.Rename(path, path+".corrupt"); err != nil {
			s.log.Error("spool: cannot rename the unreadable segment; removing it", "file", path, "err", err)
			os.Remove(path)
		}
		return nil
	case bad != nil:
		s.corrupt++
		s.log.Error("spool: segment damaged, its tail skipped", "file", path, "records_kept", seg.records,
			"bytes_kept", seg.size, "bytes_skipped", fi.Size()-seg.size, "err", bad)
	}
	return seg
}

// countBefore counts the records of seg that end at or before off.
func (seg *segment) countBefore(off int64, s *Spool) int {
	if off <= 0 {
		return 0
	}
	f, err := os.Open(seg.path)
	if err != nil {
		return 0
	}
	defer f.Close()
	r := &recordReader{f: f, limit: seg.size, buf: make([]byte, 0, 256<<10)}
	var pos int64
	k := 0
	for pos < off && pos < seg.size {
		n, _, err := r.next(pos)
		if err != nil || pos+n > off {
			break
		}
		pos += n
		k++
	}
	return k
}

// offsetAfter returns the offset after the first k records of seg.
func (s *Spool) offsetAfter(seg *segment, k int) int64 {
	f, err := os.Open(seg.path)
	if err != nil {
		return 0
	}
	defer f.Close()
	r := &recordReader{f: f, limit: seg.size, buf: make([]byte, 0, 256<<10)}
	var pos int64
	for range k {
		n, _, err := r.next(pos)
		if err != nil {
			break
		}
		pos += n
	}
	return pos
}

func (s *Spool) readCursor() (uint64, int64) {
	b, err := os.ReadFile(filepath.Join(s.o.Dir, "cursor"))
	if err != nil {
		return 0, 0
	}
	var seg uint64
	var off int64
	if _, err := fmt.Sscanf(string(b), "%d %d", &seg, &off); err != nil {
		// A torn cursor redelivers from the oldest segment: duplicates,
		// which the recorder ignores, rather than losses.
		s.log.Warn("spool: unreadable cursor; delivering every segment again", "err", err)
		return 0, 0
	}
	return seg, off
}

// rotate closes the active segment (after an fsync) and starts a new one.
// Called with mu held (or before the spool is shared).
func (s *Spool) rotate() error {
	if s.w != nil {
		if s.dirty {
			if err := s.w.Sync(); err != nil {
				s.log.Error("spool: fsync of a full segment", "err", err)
			}
			s.dirty = false
		}
		s.w.Close()
		s.w = nil
	}
	id := s.nextSegID
	path := filepath.Join(s.o.Dir, segName(id))
	f, err := s.openSeg(path)
	if err != nil {
		return fmt.Errorf("spool: new segment: %w", err)
	}
	s.nextSegID++
	s.w = f
	s.segs = append(s.segs, &segment{id: id, path: path})
	s.dirDirty = true
	return nil
}

func (s *Spool) active() *segment { return s.segs[len(s.segs)-1] }

// Append writes entries at the end, in order, with one write. Beyond
// MaxBytes it first deletes the oldest segments and returns how many
// records not yet handed out went with them. A write error makes the spool
// unavailable for a pause; then Append returns an error wrapping
// ErrUnavailable and nothing was spooled.
func (s *Spool) Append(entries []Entry) (dropped int, err error) {
	if len(entries) == 0 {
		return 0, nil
	}
	now := s.o.Now()
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return 0, fmt.Errorf("%w: closed", ErrUnavailable)
	}
	if s.broken != nil {
		if now.Before(s.retryAt) {
			return 0, fmt.Errorf("%w: %w", ErrUnavailable, s.broken)
		}
		s.log.Info("spool: trying the disk again", "after", s.broken)
	}
	b := s.wbuf[:0]
	at := now.UnixNano()
	for _, e := range entries {
		start := len(b)
		b = append(b, make([]byte, frameHeader+8)...)
		binary.BigEndian.PutUint64(b[start+frameHeader:], uint64(at))
		b = binary.AppendUvarint(b, uint64(len(e.Key)))
		b = append(b, e.Key...)
		b = append(b, e.Value...)
		body := b[start+frameHeader:]
		binary.BigEndian.PutUint32(b[start:], uint32(len(body)))
		binary.BigEndian.PutUint32(b[start+4:], crc32.Checksum(body, castagnoli))
	}
	s.wbuf = b
	need := int64(len(b))

	dropped = s.makeRoom(need)
	if s.w == nil || s.active().size >= s.o.SegmentBytes {
		if err := s.rotate(); err != nil {
			return dropped, s.fail(err, now)
		}
	}
	seg := s.active()
	if n, err := s.w.Write(b); err != nil {
		if n > 0 {
			// Cut a partial batch so the segment ends on a record.
			if terr := s.w.Truncate(seg.size); terr != nil {
				s.log.Error("spool: cannot cut a partial write; the segment tail will be skipped when next opened", "file", seg.path, "err", terr)
				seg.disk += int64(n)
				s.bytes += int64(n)
				// Appending after the torn bytes would put records where
				// the reader cannot find them: the next Append starts a
				// new segment.
				if err := s.w.Sync(); err != nil {
					s.log.Error("spool: fsync of the torn segment", "file", seg.path, "err", err)
				}
				s.w.Close()
				s.w = nil
			}
		}
		return dropped, s.fail(fmt.Errorf("write %s: %w", seg.path, err), now)
	}
	if s.broken != nil {
		s.log.Info("spool: writing again", "was", s.broken)
		s.broken = nil
	}
	seg.size += need
	seg.disk += need
	seg.records += len(entries)
	s.bytes += need
	s.pending += int64(len(entries))
	s.dirty = true
	s.wake()
	return dropped, nil
}

func (s *Spool) fail(err error, now time.Time) error {
	if s.broken == nil {
		s.log.Error("spool: cannot write; results go to memory and are dropped when it is full, until the disk takes writes again",
			"err", err, "retry_in", retryPause)
	}
	s.broken = err
	s.retryAt = now.Add(retryPause)
	return fmt.Errorf("%w: %w", ErrUnavailable, err)
}

// makeRoom deletes the oldest segments until need more bytes fit under
// MaxBytes, and returns the records not yet handed out that were deleted.
func (s *Spool) makeRoom(need int64) int {
	dropped := 0
	for s.bytes+need > s.o.MaxBytes && len(s.segs) > 0 {
		if len(s.segs) == 1 {
			if s.active().size == 0 {
				break // a single batch above the cap: write it anyway
			}
			if err := s.rotate(); err != nil {
				break
			}
		}
		old := s.segs[0]
		unread := 0
		if old == s.rseg {
			unread = old.records - s.rread
			s.advanceReader()
		}
		s.segs = s.segs[1:]
		os.Remove(old.path)
		s.dirDirty = true
		s.bytes -= old.disk
		s.pending -= int64(unread)
		dropped += unread
	}
	return dropped
}

// advanceReader moves the reader to the segment after rseg.
func (s *Spool) advanceReader() {
	i := slices.Index(s.segs, s.rseg)
	if s.rf != nil {
		s.rf.Close()
		s.rf = nil
	}
	s.buf = s.buf[:0]
	s.roff, s.rread = 0, 0
	s.rseg = s.segs[i+1]
}

func (s *Spool) wake() {
	select {
	case s.notify <- struct{}{}:
	default:
	}
}

// Notify is signalled after an Append or an Ack: Next may have more.
func (s *Spool) Notify() <-chan struct{} { return s.notify }

// Next hands out the oldest record not yet handed out. It returns false when
// there is none, or when Window records wait for acknowledgement; wait on
// Notify then. The second value counts records skipped because their
// segment turned out damaged while reading.
func (s *Spool) Next() (Record, int, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	skipped := 0
	for {
		if s.closed || s.n == len(s.slots) {
			return Record{}, skipped, false
		}
		seg := s.rseg
		if s.roff >= seg.size {
			if seg == s.active() {
				return Record{}, skipped, false
			}
			s.advanceReader()
			s.gc()
			continue
		}
		if s.rf == nil {
			f, err := os.Open(seg.path)
			if err != nil {
				skipped += s.skipRest(fmt.Errorf("open: %w", err))
				continue
			}
			s.rf = f
			s.buf = s.buf[:0]
		}
		r := recordReader{f: s.rf, limit: seg.size, buf: s.buf, at: s.bufAt}
		n, body, err := r.next(s.roff)
		s.buf, s.bufAt = r.buf, r.at
		if err != nil {
			skipped += s.skipRest(err)
			continue
		}
		at, key, value, err := decode(body)
		if err != nil {
			skipped += s.skipRest(err)
			continue
		}
		ticket := s.firstTicket + uint64(s.n)
		s.slots[(s.head+s.n)%len(s.slots)] = slot{seg: seg.id, start: s.roff, end: s.roff + n, at: at}
		s.n++
		s.roff += n
		s.rread++
		return Record{Key: key, Value: value, Appended: time.Unix(0, at), Ticket: ticket}, skipped, true
	}
}

// skipRest gives up the rest of the reader's segment after damage found
// while reading (the file changed after Open checked it).
func (s *Spool) skipRest(err error) int {
	seg := s.rseg
	lost := seg.records - s.rread
	s.corrupt++
	s.log.Error("spool: segment damaged while reading; its remaining records skipped", "file", seg.path,
		"offset", s.roff, "records_skipped", lost, "err", err)
	s.pending -= int64(lost)
	seg.records = s.rread
	seg.size = s.roff
	if seg == s.active() {
		// Appends go on after the damage; never read across it.
		if rerr := s.rotate(); rerr != nil {
			s.log.Error("spool: cannot start a new segment", "err", rerr)
		}
	}
	return lost
}

func decode(body []byte) (at int64, key, value []byte, err error) {
	if len(body) < 9 {
		return 0, nil, nil, errors.New("record too short")
	}
	at = int64(binary.BigEndian.Uint64(body))
	kl, k := binary.Uvarint(body[8:])
	if k <= 0 || uint64(len(body)-8-k) < kl {
		return 0, nil, nil, errors.New("bad key length")
	}
	rest := body[8+k:]
	key = slices.Clone(rest[:kl])
	value = slices.Clone(rest[kl:])
	return at, key, value, nil
}

// Ack marks the record of ticket as acknowledged by Kafka. Once every older
// record is acknowledged too, its segment may be deleted.
func (s *Spool) Ack(ticket uint64) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if ticket < s.firstTicket || ticket >= s.firstTicket+uint64(s.n) {
		return
	}
	sl := &s.slots[(s.head+int(ticket-s.firstTicket))%len(s.slots)]
	if sl.acked {
		return
	}
	sl.acked = true
	s.pending--
	moved := false
	for s.n > 0 && s.slots[s.head].acked {
		s.slots[s.head] = slot{}
		s.head = (s.head + 1) % len(s.slots)
		s.n--
		s.firstTicket++
		moved = true
	}
	if moved {
		s.gc()
		s.wake()
	}
}

// low returns the position of the oldest record not acknowledged: the
// window's first slot, else the reader.
func (s *Spool) low() (uint64, int64) {
	if s.n > 0 {
		sl := s.slots[s.head]
		return sl.seg, sl.start
	}
	return s.rseg.id, s.roff
}

// gc deletes the segments wholly below the low-water mark.
func (s *Spool) gc() {
	lowSeg, _ := s.low()
	for len(s.segs) > 1 && s.segs[0].id < lowSeg {
		old := s.segs[0]
		s.segs = s.segs[1:]
		os.Remove(old.path)
		s.bytes -= old.disk
		s.dirDirty = true
	}
}

// Sync makes what was appended durable (fsync of the active segment and of
// the directory) and records the acknowledged position in the cursor file.
func (s *Spool) Sync() error {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return nil
	}
	w, dirty, dirDirty := s.w, s.dirty, s.dirDirty
	s.dirty, s.dirDirty = false, false
	seg, off := s.low()
	cur := fmt.Sprintf("%d %d\n", seg, off)
	writeCur := cur != s.lastCur
	s.lastCur = cur
	s.mu.Unlock()
	// fsync outside the lock: appends go on meanwhile.
	var errs []error
	if dirty && w != nil {
		if err := w.Sync(); err != nil && !errors.Is(err, os.ErrClosed) {
			errs = append(errs, fmt.Errorf("spool: fsync: %w", err))
		}
	}
	if writeCur {
		if err := writeFileSync(filepath.Join(s.o.Dir, "cursor"), []byte(cur)); err != nil {
			errs = append(errs, fmt.Errorf("spool: cursor: %w", err))
		}
	}
	if dirDirty || writeCur {
		// The segments created or removed and the cursor's rename last.
		if d, err := os.Open(s.o.Dir); err == nil {
			// EINVAL: a file system that cannot sync a directory.
			if err := d.Sync(); err != nil && !errors.Is(err, syscall.EINVAL) {
				errs = append(errs, fmt.Errorf("spool: fsync of the directory: %w", err))
			}
			d.Close()
		}
	}
	return errors.Join(errs...)
}

// Stats returns the spool's figures now.
func (s *Spool) Stats() Stats {
	s.mu.Lock()
	defer s.mu.Unlock()
	st := Stats{Bytes: s.bytes, Records: s.pending, CorruptSegments: s.corrupt, Err: s.broken}
	switch {
	case s.n > 0:
		st.Oldest = time.Unix(0, s.slots[s.head].at)
	case s.pending > 0 && s.roff < s.rseg.size:
		var b [frameHeader + 8]byte
		f, err := os.Open(s.rseg.path)
		if err == nil {
			if _, err := f.ReadAt(b[:], s.roff); err == nil {
				st.Oldest = time.Unix(0, int64(binary.BigEndian.Uint64(b[frameHeader:])))
			}
			f.Close()
		}
	}
	return st
}

// Close syncs and releases the files. Records not acknowledged stay for the
// next Open.
func (s *Spool) Close() error {
	err := s.Sync()
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return nil
	}
	s.closed = true
	if s.w != nil {
		s.w.Close()
	}
	if s.pending == 0 && s.n == 0 {
		// Everything acknowledged: leave no segment behind.
		for _, seg := range s.segs {
			os.Remove(seg.path)
		}
		os.Remove(filepath.Join(s.o.Dir, "cursor"))
	}
	if s.rf != nil {
		s.rf.Close()
	}
	s.lock.Close()
	s.wake()
	return err
}

// recordReader reads framed records from a file through a buffer.
type recordReader struct {
	f     *os.File
	limit int64 // bytes of valid file
	buf   []byte
	at    int64 // file offset of buf[0]
}

// next returns the framed length and the checked body of the record at off.
func (r *recordReader) next(off int64) (int64, []byte, error) {
	hdr, err := r.bytes(off, frameHeader)
	if err != nil {
		return 0, nil, err
	}
	l := int64(binary.BigEndian.Uint32(hdr))
	sum := binary.BigEndian.Uint32(hdr[4:])
	if l > maxRecord || l < 9 {
		return 0, nil, fmt.Errorf("offset %d: record length %d out of range", off, l)
	}
	body, err := r.bytes(off+frameHeader, l)
	if err != nil {
		return 0, nil, err
	}
	if crc32.Checksum(body, castagnoli) != sum {
		return 0, nil, fmt.Errorf("offset %d: CRC-32C mismatch", off)
	}
	return frameHeader + l, body, nil
}

// bytes returns n bytes at off, reading ahead into the buffer.
func (r *recordReader) bytes(off, n int64) ([]byte, error) {
	if off+n > r.limit {
		return nil, fmt.Errorf("offset %d: torn record (%d bytes wanted, %d in the file)", off, n, r.limit-off)
	}
	if off >= r.at && off+n <= r.at+int64(len(r.buf)) {
		return r.buf[off-r.at : off-r.at+n], nil
	}
	size := max(int64(cap(r.buf)), n)
	size = min(size, r.limit-off)
	if int64(cap(r.buf)) < size {
		r.buf = make([]byte, size)
	}
	r.buf = r.buf[:size]
	k, err := r.f.ReadAt(r.buf, off)
	// io.EOF with the n bytes wanted read is no error: the read-ahead hit the end.
	if err != nil && (!errors.Is(err, io.EOF) || int64(k) < n) {
		r.buf = r.buf[:0]
		return nil, fmt.Errorf("offset %d: %w", off, err)
	}
	r.buf, r.at = r.buf[:k], off
	return r.buf[:n], nil
}
