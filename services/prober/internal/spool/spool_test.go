package spool

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"
)

func open(t testing.TB, dir string, maxBytes, segBytes int64, window int) *Spool {
	t.Helper()
	s, err := Open(Options{Dir: dir, Topic: "t", MaxBytes: maxBytes, SegmentBytes: segBytes, Window: window})
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// crash drops the spool like a killed process: no cursor written, no
// fsync; the kernel keeps what was written.
func crash(s *Spool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.closed = true
	s.w.Close()
	if s.rf != nil {
		s.rf.Close()
	}
	s.lock.Close()
}

func appendN(t testing.TB, s *Spool, from, to int) int {
	t.Helper()
	dropped := 0
	for i := from; i < to; i++ {
		d, err := s.Append([]Entry{{Key: fmt.Appendf(nil, "k%d", i%7), Value: fmt.Appendf(nil, "value-%05d", i)}})
		if err != nil {
			t.Fatal(err)
		}
		dropped += d
	}
	return dropped
}

// drain takes everything Next hands out, acknowledging when ack says so.
func drain(t testing.TB, s *Spool, ack bool) []string {
	t.Helper()
	var got []string
	for {
		r, skipped, ok := s.Next()
		if skipped != 0 {
			t.Errorf("Next skipped %d records", skipped)
		}
		if !ok {
			return got
		}
		got = append(got, string(r.Value))
		if ack {
			s.Ack(r.Ticket)
		}
	}
}

func values(from, to int) []string {
	var v []string
	for i := from; i < to; i++ {
		v = append(v, fmt.Sprintf("value-%05d", i))
	}
	return v
}

func segFiles(t testing.TB, dir string) []string {
	t.Helper()
	m, err := filepath.Glob(filepath.Join(dir, "*.seg"))
	if err != nil {
		t.Fatal(err)
	}
	return m
}

func TestOrderAcrossSegmentsAndRemovalAfterAck(t *testing.T) {
	dir := t.TempDir()
	s := open(t, dir, 1<<20, 1024, 10000)
	defer s.Close()
	appendN(t, s, 0, 500)
	if n := len(segFiles(t, dir)); n < 5 {
		t.Fatalf("%d segments for 500 records of 1 KiB segments, want several", n)
	}
	var tickets []uint64
	var got []string
	for {
		r, _, ok := s.Next()
		if !ok {
			break
		}
		got = append(got, string(r.Value))
		tickets = append(tickets, r.Ticket)
		if want := fmt.Sprintf("k%d", (len(got)-1)%7); string(r.Key) != want {
			t.Fatalf("record %d key %q, want %q", len(got)-1, r.Key, want)
		}
	}
	if !slices.Equal(got, values(0, 500)) {
		t.Fatalf("read %d records out of order or incomplete: first %v", len(got), got[:min(3, len(got))])
	}
	before := len(segFiles(t, dir))
	// Acknowledged out of order (partitions answer independently): the
	// segments go only once every older record is acknowledged.
	for _, tk := range tickets[1:] {
		s.Ack(tk)
	}
	if st := s.Stats(); st.Records != 1 || len(segFiles(t, dir)) != before {
		t.Errorf("with the first record unacknowledged: %d records, %d segments; want 1 and %d", st.Records, len(segFiles(t, dir)), before)
	}
	s.Ack(tickets[0])
	st := s.Stats()
	if st.Records != 0 || len(segFiles(t, dir)) != 1 {
		t.Errorf("all acknowledged: %d records, %d segment files; want 0 and the active one", st.Records, len(segFiles(t, dir)))
	}
	if !st.Oldest.IsZero() {
		t.Errorf("oldest %v with nothing spooled", st.Oldest)
	}
}

func TestWindowBoundsUnacknowledged(t *testing.T) {
	s := open(t, t.TempDir(), 1<<20, 0, 3)
	defer s.Close()
	appendN(t, s, 0, 10)
	got := drain(t, s, false)
	if !slices.Equal(got, values(0, 3)) {
		t.Fatalf("handed out %v without acks, want the first 3", got)
	}
	if st := s.Stats(); st.Oldest.IsZero() || time.Since(st.Oldest) > time.Minute {
		t.Errorf("oldest %v, want the first append's time", st.Oldest)
	}
}

func TestCapDropsTheOldest(t *testing.T) {
	dir := t.TempDir()
	// A record here is 8+8+1+2+11 = 30 bytes: 10 records a segment.
	s := open(t, dir, 3000, 300, 10000)
	defer s.Close()
	dropped := appendN(t, s, 0, 1000)
	st := s.Stats()
	if st.Bytes > 3000 {
		t.Errorf("spool holds %d bytes, cap 3000", st.Bytes)
	}
	got := drain(t, s, true)
	if int(st.Records) != len(got) || dropped+len(got) != 1000 {
		t.Errorf("dropped %d, %d records spooled, %d read; want dropped + read = 1000", dropped, st.Records, len(got))
	}
	// The newest are kept, in order, up to the last one appended.
	if len(got) < 50 || !slices.Equal(got, values(1000-len(got), 1000)) {
		t.Errorf("kept %d records %v...; want the newest in order", len(got), got[:min(3, len(got))])
	}
}

func TestCapDropsOnlyWhatWasNotHandedOut(t *testing.T) {
	s := open(t, t.TempDir(), 3000, 300, 10000)
	defer s.Close()
	appendN(t, s, 0, 20)
	inFlight := drain(t, s, false) // handed to Kafka, not acknowledged
	dropped := appendN(t, s, 20, 1000)
	if want := 1000 - 20 - int(s.Stats().Records-20); dropped != want {
		t.Errorf("dropped %d, want %d (records in flight are not dropped)", dropped, want)
	}
	if len(inFlight) != 20 {
		t.Fatalf("%d in flight, want 20", len(inFlight))
	}
}

func TestReopenAfterCrashRedeliversWhatWasNotAcknowledged(t *testing.T) {
	dir := t.TempDir()
	s := open(t, dir, 1<<20, 1024, 10000)
	appendN(t, s, 0, 300)
	for range 100 {
		r, _, _ := s.Next()
		s.Ack(r.Ticket)
	}
	if err := s.Sync(); err != nil {
		t.Fatal(err)
	}
	// Acknowledged after the last sync: delivered again after the crash.
	for range 50 {
		r, _, _ := s.Next()
		s.Ack(r.Ticket)
	}
	s.Next() // handed out, never acknowledged
	crash(s)

	s = open(t, dir, 1<<20, 1024, 10000)
	defer s.Close()
	// Segments wholly acknowledged were deleted at once; the rest of the
	// segment holding record 150 and what follows comes again.
	got := drain(t, s, true)
	from := 300 - len(got)
	if from < 100 || from > 150 || !slices.Equal(got, values(from, 300)) {
		t.Errorf("redelivered %d records starting %v, want from between 100 and 150 to 299", len(got), got[:min(1, len(got))])
	}
	t.Logf("redelivered from %d (acknowledged since the last sync: 100..149)", from)
	if st := s.Stats(); st.Records != 0 || st.CorruptSegments != 0 {
		t.Errorf("after the crash and a drain: %d records, %d corrupt segments; want 0 and 0", st.Records, st.CorruptSegments)
	}
	// New records follow the old ones.
	appendN(t, s, 300, 310)
	if got := drain(t, s, true); !slices.Equal(got, values(300, 310)) {
		t.Errorf("after reopening, new records %v", got)
	}
}

func TestCleanCloseKeepsOnlyTheUnacknowledged(t *testing.T) {
	dir := t.TempDir()
	s := open(t, dir, 1<<20, 0, 10000)
	appendN(t, s, 0, 10)
	for range 4 {
		r, _, _ := s.Next()
		s.Ack(r.Ticket)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	s = open(t, dir, 1<<20, 0, 10000)
	defer s.Close()
	if got := drain(t, s, true); !slices.Equal(got, values(4, 10)) {
		t.Errorf("after a clean close: %v, want 4..9", got)
	}
}

func TestDamageIsSkippedAndCounted(t *testing.T) {
	for _, tc := range []struct {
		name    string
		damage  func(t *testing.T, segs []string)
		corrupt int64
		want    []string
	}{
		{"torn tail", func(t *testing.T, segs []string) {
			f, err := os.OpenFile(segs[len(segs)-1], os.O_WRONLY|os.O_APPEND, 0)
			if err != nil {
				t.Fatal(err)
			}
			_, err = f.Write([]byte{0, 0, 0, 30, 1, 2}) // a header cut by the crash
			f.Close()
			if err != nil {
				t.Fatal(err)
			}
		}, 1, values(0, 100)},
		{"flipped byte mid-segment", func(t *testing.T, segs []string) {
			// Segment 2 holds records 34..67 (30-byte records, 1 KiB
			// segments); damage its 11th record.
			f, err := os.OpenFile(segs[1], os.O_RDWR, 0)
			if err != nil {
				t.Fatal(err)
			}
			_, err = f.WriteAt([]byte{0xff}, 10*30+20)
			f.Close()
			if err != nil {
				t.Fatal(err)
			}
		}, 1, append(values(0, 44), values(68, 100)...)},
		{"planted garbage segment", func(t *testing.T, segs []string) {
			garbage := []byte(strings.Repeat("not a spool record ", 100))
			if err := os.WriteFile(filepath.Join(filepath.Dir(segs[0]), segName(99)), garbage, 0o640); err != nil {
				t.Fatal(err)
			}
		}, 1, values(0, 100)},
		{"length out of range", func(t *testing.T, segs []string) {
			f, err := os.OpenFile(segs[0], os.O_RDWR, 0)
			if err != nil {
				t.Fatal(err)
			}
			_, err = f.WriteAt([]byte{0xff, 0xff, 0xff, 0xff}, 0)
			f.Close()
			if err != nil {
				t.Fatal(err)
			}
		}, 1, values(34, 100)},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			s := open(t, dir, 1<<20, 1000, 10000)
			appendN(t, s, 0, 100)
			if err := s.Close(); err != nil {
				t.Fatal(err)
			}
			segs := segFiles(t, dir)
			if len(segs) != 3 {
				t.Fatalf("%d segments, want 3", len(segs))
			}
			tc.damage(t, segs)
			s = open(t, dir, 1<<20, 1000, 10000)
			defer s.Close()
			if got := s.Stats().CorruptSegments; got != tc.corrupt {
				t.Errorf("corrupt segments %d, want %d", got, tc.corrupt)
			}
			if got := drain(t, s, true); !slices.Equal(got, tc.want) {
				t.Errorf("delivered %d records, want %d: %v", len(got), len(tc.want), got)
			}
			appendN(t, s, 100, 101)
			if got := drain(t, s, true); !slices.Equal(got, values(100, 101)) {
				t.Errorf("after damage, a new record: %v", got)
			}
		})
	}
	// The planted file is kept aside for a person to look at.
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, segName(5)), []byte("garbage garbage garbage"), 0o640); err != nil {
		t.Fatal(err)
	}
	s := open(t, dir, 1<<20, 0, 10)
	s.Close()
	if _, err := os.Stat(filepath.Join(dir, segName(5)+".corrupt")); err != nil {
		t.Errorf("the unreadable segment was not renamed: %v", err)
	}
}

func TestDamageWhileReadingIsSkipped(t *testing.T) {
	dir := t.TempDir()
	s := open(t, dir, 1<<20, 1000, 10000)
	defer s.Close()
	appendN(t, s, 0, 100)
	f, err := os.OpenFile(segFiles(t, dir)[0], os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	_, err = f.WriteAt([]byte{0xff}, 5*30+20)
	f.Close()
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	skipped := 0
	for {
		r, k, ok := s.Next()
		skipped += k
		if !ok {
			break
		}
		got = append(got, string(r.Value))
		s.Ack(r.Ticket)
	}
	if skipped != 34-5 || !slices.Equal(got, append(values(0, 5), values(34, 100)...)) {
		t.Errorf("skipped %d, read %v; want 29 skipped and the rest", skipped, got)
	}
	if st := s.Stats(); st.CorruptSegments != 1 || st.Records != 0 {
		t.Errorf("stats %+v, want 1 corrupt segment, 0 records", st)
	}
}

func TestFullDiskMakesTheSpoolUnavailable(t *testing.T) {
	dir := t.TempDir()
	s := open(t, dir, 1<<20, 64, 10000)
	defer s.Close()
	appendN(t, s, 0, 1)
	// /dev/full answers every write with ENOSPC.
	s.openSeg = func(string) (segFile, error) { return os.OpenFile("/dev/full", os.O_WRONLY, 0) }
	for range 3 { // fill the 64-byte segment, then the next write opens a new one
		_, err := s.Append([]Entry{{Key: []byte("k"), Value: []byte("value-full")}})
		if err == nil {
			continue
		}
		if !errors.Is(err, ErrUnavailable) || !errors.Is(err, syscall.ENOSPC) {
			t.Fatalf("Append on a full disk: %v; want ErrUnavailable wrapping ENOSPC", err)
		}
		if s.Stats().Err == nil {
			t.Error("Stats.Err nil while unavailable")
		}
		// What was spooled before is still delivered.
		got := drain(t, s, true)
		if len(got) == 0 || got[0] != "value-00000" {
			t.Errorf("after the disk filled, delivered %v", got)
		}
		return
	}
	t.Fatal("no error from a full disk")
}

func TestSecondOpenIsRefused(t *testing.T) {
	dir := t.TempDir()
	s := open(t, dir, 1<<20, 0, 10)
	defer s.Close()
	if _, err := Open(Options{Dir: dir, Topic: "t", MaxBytes: 1 << 20}); !errors.Is(err, ErrLocked) {
		t.Errorf("second Open: %v, want ErrLocked", err)
	}
}

func TestOtherTopicIsRefused(t *testing.T) {
	dir := t.TempDir()
	s := open(t, dir, 1<<20, 0, 10)
	appendN(t, s, 0, 1)
	s.Close()
	_, err := Open(Options{Dir: dir, Topic: "other", MaxBytes: 1 << 20})
	if err == nil || !strings.Contains(err.Error(), `holds 1 records for topic "t", not "other"`) {
		t.Errorf("Open for another topic: %v", err)
	}
}

func TestDeliveredSpoolLeavesNothingAndTakesAnyTopic(t *testing.T) {
	dir := t.TempDir()
	s := open(t, dir, 1<<20, 64, 10)
	appendN(t, s, 0, 5)
	drain(t, s, true)
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if segs := segFiles(t, dir); len(segs) != 0 {
		t.Errorf("segments left after everything was acknowledged: %v", segs)
	}
	other, err := Open(Options{Dir: dir, Topic: "other", MaxBytes: 1 << 20})
	if err != nil {
		t.Fatalf("Open of an empty spool for another topic: %v", err)
	}
	other.Close()
}

// FuzzOpen opens a spool whose only segment holds arbitrary bytes: never a
// panic or an error, and what Next hands out are whole records of the
// segment, in order, followed by what is appended after.
func FuzzOpen(f *testing.F) {
	seed := t0Segment(f)
	f.Add(seed)
	f.Add(seed[:len(seed)-3])
	f.Add(append(append([]byte{}, seed...), 0, 0, 0, 9, 1, 2, 3))
	f.Add([]byte("garbage"))
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, data []byte) {
		dir := t.TempDir()
		if err := os.WriteFile(filepath.Join(dir, segName(1)), data, 0o640); err != nil {
			t.Fatal(err)
		}
		s, err := Open(Options{Dir: dir, Topic: "t", MaxBytes: 1 << 20, Window: 1 << 16})
		if err != nil {
			t.Fatal(err)
		}
		defer s.Close()
		n := s.Stats().Records
		got := 0
		for {
			_, _, ok := s.Next()
			if !ok {
				break
			}
			got++
		}
		if int64(got) != n {
			t.Fatalf("Stats said %d records, Next handed out %d", n, got)
		}
		if _, err := s.Append([]Entry{{Key: []byte("k"), Value: []byte("after")}}); err != nil {
			t.Fatal(err)
		}
		r, _, ok := s.Next()
		if !ok || string(r.Value) != "after" {
			t.Fatalf("after the fuzzed segment: %q, %v", r.Value, ok)
		}
	})
}

// t0Segment returns the bytes of a segment holding three records.
func t0Segment(t testing.TB) []byte {
	dir := t.TempDir()
	s := open(t, dir, 1<<20, 0, 10)
	appendN(t, s, 0, 3)
	s.Close()
	b, err := os.ReadFile(segFiles(t, dir)[0])
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// A cursor left behind by segments that are gone (every segment deleted
// after a drain, the cursor's removal lost to a crash, or an operator who
// removed *.seg only) must not make the next start take its new segments
// for acknowledged ones.
func TestStaleCursorDoesNotHideNewSegments(t *testing.T) {
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "cursor"), []byte("7 0\n"), 0o640); err != nil {
		t.Fatal(err)
	}
	s := open(t, dir, 1<<20, 64, 10000)
	appendN(t, s, 0, 10)
	crash(s) // before the first Sync rewrote the cursor

	s = open(t, dir, 1<<20, 64, 10000)
	defer s.Close()
	if got := drain(t, s, true); !slices.Equal(got, values(0, 10)) {
		t.Errorf("after a restart on a stale cursor: delivered %v, want all 10", got)
	}
}

// tornFile writes half of what it is given and fails, and cannot be cut
// back, while tear is set: a disk that filled mid-write and then an I/O
// error on ftruncate.
type tornFile struct {
	*os.File
	tear bool
}

func (f *tornFile) Write(b []byte) (int, error) {
	if !f.tear {
		return f.File.Write(b)
	}
	n, _ := f.File.Write(b[:len(b)/2])
	return n, syscall.ENOSPC
}

func (f *tornFile) Truncate(size int64) error {
	if f.tear {
		return &os.PathError{Op: "truncate", Path: f.Name(), Err: syscall.EIO}
	}
	return f.File.Truncate(size)
}

// A partial write that cannot be cut back leaves bytes after the last
// record: appends after the pause must not follow them in that segment.
func TestPartialWriteThatCannotBeCutIsNotAppendedTo(t *testing.T) {
	dir := t.TempDir()
	now := time.Now()
	s, err := Open(Options{Dir: dir, Topic: "t", MaxBytes: 1 << 20, Window: 10000, Now: func() time.Time { return now }})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	var torn *tornFile
	s.openSeg = func(name string) (segFile, error) {
		f, err := os.OpenFile(name, os.O_CREATE|os.O_EXCL|os.O_WRONLY|os.O_APPEND, 0o640)
		torn = &tornFile{File: f}
		return torn, err
	}
	s.mu.Lock()
	if err := s.rotate(); err != nil {
		t.Fatal(err)
	}
	s.mu.Unlock()
	appendN(t, s, 0, 5)
	torn.tear = true
	if _, err := s.Append([]Entry{{Key: []byte("k"), Value: []byte("value-00005")}}); !errors.Is(err, ErrUnavailable) {
		t.Fatalf("Append on a torn write: %v, want ErrUnavailable", err)
	}
	torn.tear = false
	now = now.Add(retryPause + time.Second)
	appendN(t, s, 6, 10)
	if got := drain(t, s, true); !slices.Equal(got, append(values(0, 5), values(6, 10)...)) {
		t.Errorf("delivered %v, want 0..4 and 6..9 (5 was refused)", got)
	}
}

// A segment that is the whole spool and holds no record: an empty one (a
// crash right after it was created) goes silently, a damaged one is set
// aside and counted; either way the spool opens and takes records.
func TestSegmentWithoutARecord(t *testing.T) {
	for _, tc := range []struct {
		name    string
		data    []byte
		corrupt int64
	}{
		{"zero-length", nil, 0},
		{"truncated header", []byte{0, 0, 0}, 1},
		{"huge length", []byte{0xff, 0xff, 0xff, 0xf0, 1, 2, 3, 4, 5, 6, 7, 8, 9}, 1},
		{"length beyond the file", []byte{0, 1, 0, 0, 1, 2, 3, 4, 5, 6, 7, 8, 9}, 1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			name := filepath.Join(dir, segName(3))
			if err := os.WriteFile(name, tc.data, 0o640); err != nil {
				t.Fatal(err)
			}
			s := open(t, dir, 1<<20, 0, 10)
			defer s.Close()
			if st := s.Stats(); st.CorruptSegments != tc.corrupt || st.Records != 0 {
				t.Errorf("stats %+v, want %d corrupt and 0 records", st, tc.corrupt)
			}
			_, errCorrupt := os.Stat(name + ".corrupt")
			if (errCorrupt == nil) != (tc.corrupt == 1) {
				t.Errorf("renamed .corrupt: %v, want %v", errCorrupt == nil, tc.corrupt == 1)
			}
			appendN(t, s, 0, 3)
			if got := drain(t, s, true); !slices.Equal(got, values(0, 3)) {
				t.Errorf("after it: %v", got)
			}
		})
	}
}

// An empty topic file (a crash or power loss while it was written) says
// nothing about the records: the spool opens and delivers them.
func TestEmptyTopicFileIsNotAnotherTopic(t *testing.T) {
	dir := t.TempDir()
	s := open(t, dir, 1<<20, 0, 10)
	appendN(t, s, 0, 3)
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "topic"), nil, 0o640); err != nil {
		t.Fatal(err)
	}
	s = open(t, dir, 1<<20, 0, 10)
	defer s.Close()
	if got := drain(t, s, true); !slices.Equal(got, values(0, 3)) {
		t.Errorf("delivered %v, want 0..2", got)
	}
	if b, err := os.ReadFile(filepath.Join(dir, "topic")); err != nil || string(b) != "t" {
		t.Errorf("topic file %q (%v), want %q", b, err, "t")
	}
}

// A segment that cannot be opened (here a dangling link; on a real disk an
// I/O error) is skipped and counted: the prober still starts.
func TestUnopenableSegmentIsSkipped(t *testing.T) {
	dir := t.TempDir()
	s := open(t, dir, 1<<20, 0, 10)
	appendN(t, s, 0, 3)
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(filepath.Join(dir, "gone"), filepath.Join(dir, segName(50))); err != nil {
		t.Fatal(err)
	}
	s = open(t, dir, 1<<20, 0, 10)
	defer s.Close()
	if st := s.Stats(); st.CorruptSegments != 1 {
		t.Errorf("corrupt segments %d, want 1", st.CorruptSegments)
	}
	if got := drain(t, s, true); !slices.Equal(got, values(0, 3)) {
		t.Errorf("delivered %v, want 0..2", got)
	}
}
