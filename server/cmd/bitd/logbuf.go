package main

import (
	"bufio"
	"context"
	"io"
	"log/slog"
	"sync"
	"time"
)

// logFlushEvery bounds how long an info line waits in the log buffer.
const logFlushEvery = 100 * time.Millisecond

// logBuffer batches log lines into few writes: the access log writes a
// line per request, and one write system call per line was about a tenth
// of bitd's CPU for a trivial query. Lines are written every
// logFlushEvery, when the buffer fills, at once for warnings and errors
// (logHandler), and by Flush (at exit). It is safe for concurrent use.
type logBuffer struct {
	mu    sync.Mutex
	w     *bufio.Writer
	timer *time.Timer // pending flush, nil when none
}

func newLogBuffer(w io.Writer) *logBuffer { return &logBuffer{w: bufio.NewWriterSize(w, 64<<10)} }

func (b *logBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	n, err := b.w.Write(p)
	if b.timer == nil && b.w.Buffered() > 0 {
		b.timer = time.AfterFunc(logFlushEvery, func() { _ = b.Flush() })
	}
	return n, err
}

// Flush writes what is buffered.
func (b *logBuffer) Flush() error {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.timer != nil {
		b.timer.Stop()
		b.timer = nil
	}
	return b.w.Flush()
}

// logHandler flushes the buffer after every record at warning level or
// above, so that problems reach the log at once.
type logHandler struct {
	slog.Handler
	buf *logBuffer
}

func (h logHandler) Handle(ctx context.Context, r slog.Record) error {
	err := h.Handler.Handle(ctx, r)
	if r.Level >= slog.LevelWarn {
		_ = h.buf.Flush()
	}
	return err
}

func (h logHandler) WithAttrs(as []slog.Attr) slog.Handler {
	return logHandler{h.Handler.WithAttrs(as), h.buf}
}

func (h logHandler) WithGroup(name string) slog.Handler {
	return logHandler{h.Handler.WithGroup(name), h.buf}
}
