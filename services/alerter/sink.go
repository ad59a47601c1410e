package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"sync"
	"time"

	"github.com/sitewatch/sitewatch/services/internal/cmdline"
)

// sinkMaxBody bounds a notification the sink reads: a webhook body is a few
// hundred bytes.
const sinkMaxBody = 1 << 20

// runSink is `alerter sink`: a webhook receiver that writes each
// notification it gets as one JSON line on stdout, marked duplicate when its
// Idempotency-Key came before. `task up` starts one and points the example
// targets' channel at it, so a first run shows the whole path (check,
// incident, outbox, delivery) without sending anything off the machine.
// ready, when not nil, gets the bound address.
func runSink(ctx context.Context, args []string, stdout, stderr io.Writer, now func() time.Time, ready func(addr string)) error {
	fs := flag.NewFlagSet("alerter sink", flag.ContinueOnError)
	fs.SetOutput(stderr)
	listen := fs.String("listen", "127.0.0.1:9105", "address to receive webhook notifications on (POST any path; GET /healthz and /readyz answer 200)")
	if err := cmdline.Parse(fs, args); errors.Is(err, flag.ErrHelp) {
		return nil
	} else if err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("unexpected arguments: %q", fs.Args())
	}
	ln, err := net.Listen("tcp", *listen)
	if err != nil {
		return fmt.Errorf("-listen: %w", err)
	}
	var mu sync.Mutex
	seen := map[string]bool{}
	mux := http.NewServeMux()
	ok := func(w http.ResponseWriter, _ *http.Request) { fmt.Fprintln(w, "ok") }
	mux.HandleFunc("GET /healthz", ok)
	mux.HandleFunc("GET /readyz", ok)
	mux.HandleFunc("POST /", func(w http.ResponseWriter, r *http.Request) {
		body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, sinkMaxBody))
		if err != nil || !json.Valid(body) {
			http.Error(w, "the body is not a JSON notification", http.StatusBadRequest)
			return
		}
		key := r.Header.Get("Idempotency-Key")
		mu.Lock()
		defer mu.Unlock()
		line, err := json.Marshal(struct {
			Time           string          `json:"time"`
			Path           string          `json:"path"`
			IdempotencyKey string          `json:"idempotency_key"`
			Duplicate      bool            `json:"duplicate"`
			Signed         bool            `json:"signed"`
			Notification   json.RawMessage `json:"notification"`
		}{now().UTC().Format(time.RFC3339Nano), r.URL.Path, key, key != "" && seen[key],
			r.Header.Get("X-Sitewatch-Signature") != "", body})
		if err != nil {
			http.Error(w, err.Error(), http.StatusInternalServerError)
			return
		}
		if _, err := fmt.Fprintf(stdout, "%s\n", line); err != nil {
			// Not written: let the sender retry.
			http.Error(w, "cannot write the notification", http.StatusServiceUnavailable)
			return
		}
		seen[key] = true
		w.WriteHeader(http.StatusOK)
	})
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 5 * time.Second}
	// A JSON log line like the alerter's: `task up` writes stdout and
	// stderr to one file, which stays a file of JSON lines (jq reads it).
	slog.New(slog.NewJSONHandler(stderr, nil)).Info("alerter sink: receiving notifications", "url", "http://"+ln.Addr().String()+"/")
	if ready != nil {
		ready(ln.Addr().String())
	}
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(ln) }()
	select {
	case err := <-errc:
		return err
	case <-ctx.Done():
	}
	shutdownCtx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	return srv.Shutdown(shutdownCtx)
}
