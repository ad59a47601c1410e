package store_test

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"net"
	"net/url"
	"regexp"
	"strconv"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/sitewatch/sitewatch/services/recorder/internal/store"
	"github.com/sitewatch/sitewatch/services/testing/stackdb"
	"github.com/sitewatch/sitewatch/services/testing/stacktest"
)

// freeAddr returns a 127.0.0.1 address nothing listens on (any more).
func freeAddr(t testing.TB) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()
	return addr
}

// Migrate keeps trying while nothing listens, and gives up when its context
// ends, naming the attempts and the last error.
func TestMigrateGivesUpWithTheLastError(t *testing.T) {
	addr := freeAddr(t)
	// 1.1 s ends the context during the wait after the fourth attempt,
	// whatever the jitter (waits of 100 ms doubling, 20% either way: the
	// fourth attempt starts by 0.84 s, a fifth not before 1.2 s). At 1.5 s
	// a fifth attempt could start just before the end and fail with the
	// deadline instead of the refused connection.
	ctx, cancel := context.WithTimeout(context.Background(), 1100*time.Millisecond)
	defer cancel()
	var log stacktest.Log
	err := store.Migrate(ctx, "postgres://postgres@"+addr+"/sitewatch?sslmode=disable&connect_timeout=1",
		slog.New(slog.NewTextHandler(&log, nil)))
	if err == nil {
		t.Fatal("Migrate succeeded with nothing listening")
	}
	if !errors.Is(err, syscall.ECONNREFUSED) {
		t.Errorf("error does not wrap ECONNREFUSED: %v", err)
	}
	m := regexp.MustCompile(`^connect to the database: (\d+) attempts in 1\.[01]\d*s: `).FindStringSubmatch(err.Error())
	if m == nil {
		t.Fatalf("error %q does not name the attempts and the time", err)
	}
	if m[1] != "4" {
		t.Errorf("%s attempts in 1.1 s, want 4 (100 ms doubling)", m[1])
	}
	if got := regexp.MustCompile(`database not reachable yet; retrying`).FindAllString(log.String(), -1); len(got) < 3 {
		t.Errorf("%d retry warnings logged, want at least 3:\n%s", len(got), log.String())
	}
}

// A definite answer from the server is not retried: a database that does not
// exist fails at the first attempt.
func TestMigrateDoesNotRetryADefiniteAnswer(t *testing.T) {
	u, err := url.Parse(stackdb.Database(t))
	if err != nil {
		t.Fatal(err)
	}
	u.Path = "/" + stacktest.Name("missing")
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	start := time.Now()
	err = store.Migrate(ctx, u.String(), slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err == nil {
		t.Fatal("Migrate succeeded against a database that does not exist")
	}
	if want := regexp.MustCompile(`^connect to the database: 1 attempts in .*SQLSTATE 3D000`); !want.MatchString(err.Error()) {
		t.Errorf("error %q, want one attempt ending in SQLSTATE 3D000", err)
	}
	if d := time.Since(start); d > 5*time.Second {
		t.Errorf("took %s: a definite answer was retried", d)
	}
}

// The first connection is retried: PostgreSQL that starts accepting
// connections a second after `recorder migrate` started (here: a TCP proxy
// to the stack's server that opens late) still gets migrated.
func TestMigrateWaitsForTheDatabase(t *testing.T) {
	dbURL := stackdb.Database(t)
	cfg, err := pgx.ParseConfig(dbURL)
	if err != nil {
		t.Fatal(err)
	}
	upstream := net.JoinHostPort(cfg.Host, itoa(cfg.Port))
	addr := freeAddr(t)
	u, err := url.Parse(dbURL)
	if err != nil {
		t.Fatal(err)
	}
	u.Host = addr

	var wg sync.WaitGroup
	defer wg.Wait() // after cancel, which closes the proxy's listener
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	opened := make(chan time.Time, 1)
	wg.Go(func() {
		time.Sleep(time.Second)
		l, err := net.Listen("tcp", addr)
		if err != nil {
			t.Errorf("proxy listen: %v", err)
			close(opened)
			return
		}
		opened <- time.Now()
		context.AfterFunc(ctx, func() { l.Close() })
		proxy(l, upstream)
	})

	var log stacktest.Log
	start := time.Now()
	if err := store.Migrate(ctx, u.String(), slog.New(slog.NewTextHandler(&log, nil))); err != nil {
		t.Fatalf("Migrate: %v\n%s", err, log.String())
	}
	at, ok := <-opened
	if !ok {
		t.FailNow()
	}
	if at.Sub(start) < 900*time.Millisecond {
		t.Fatalf("the proxy opened %s after the start: the test did not make Migrate wait", at.Sub(start))
	}
	if !regexp.MustCompile(`database reachable.* attempts=\d+`).MatchString(log.String()) {
		t.Errorf("log does not report the attempts:\n%s", log.String())
	}
	var tables int
	conn, err := pgx.Connect(ctx, dbURL)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	if err := conn.QueryRow(ctx, `SELECT count(*) FROM pg_tables WHERE schemaname = 'public'
		AND tablename IN ('targets', 'check_results', 'check_results_hourly')`).Scan(&tables); err != nil {
		t.Fatal(err)
	}
	if tables != 3 {
		t.Errorf("%d of the 3 sitewatch tables after Migrate", tables)
	}
}

// proxy forwards each connection accepted on l to upstream until l closes.
func proxy(l net.Listener, upstream string) {
	for {
		c, err := l.Accept()
		if err != nil {
			return
		}
		go func() {
			u, err := net.Dial("tcp", upstream)
			if err != nil {
				c.Close()
				return
			}
			go func() { _, _ = io.Copy(u, c); u.Close() }()
			_, _ = io.Copy(c, u)
			c.Close()
		}()
	}
}

func itoa(n uint16) string { return strconv.Itoa(int(n)) }
