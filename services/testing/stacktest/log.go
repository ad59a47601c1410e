package stacktest

import (
	"bytes"
	"sync"
)

// Log collects what a service under test writes (its JSON log lines) while
// the test reads it: safe for concurrent writes and reads.
type Log struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *Log) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *Log) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}
