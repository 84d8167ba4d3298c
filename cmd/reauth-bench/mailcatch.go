package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/signal"
	"syscall"

	"github.com/reauth/reauth/internal/mailcatch"
)

// caught is one accepted message as the catcher reports it.
type caught struct {
	MessageID  string `json:"message_id"`
	ReceivedNS int64  `json:"received_ns"` // wall clock, Unix nanoseconds
}

// mailcatchMain runs the benchmark's mail catcher: SMTP on one port, and on
// another GET /count (messages accepted) and GET /messages (their
// Message-IDs and acceptance times). It prints one line, "mailcatch smtp://A
// http://B", then serves until SIGTERM.
func mailcatchMain(args []string) int {
	fs := flag.NewFlagSet("mailcatch", flag.ContinueOnError)
	if err := fs.Parse(args); err != nil {
		return 2
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	mails, err := mailcatch.StartLean("127.0.0.1:0")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer mails.Close()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /count", func(w http.ResponseWriter, _ *http.Request) {
		_ = json.NewEncoder(w).Encode(mails.Count())
	})
	mux.HandleFunc("GET /messages", func(w http.ResponseWriter, _ *http.Request) {
		msgs := mails.Messages()
		out := make([]caught, len(msgs))
		for i, m := range msgs {
			out[i] = caught{MessageID: m.MessageID, ReceivedNS: m.Received.UnixNano()}
		}
		_ = json.NewEncoder(w).Encode(out)
	})
	srv := &http.Server{Handler: mux}
	go func() { _ = srv.Serve(ln) }()
	fmt.Printf("mailcatch %s http://%s\n", mails.URL(), ln.Addr())
	<-ctx.Done()
	_ = srv.Close()
	return 0
}
