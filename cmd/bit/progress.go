package main

import (
	"fmt"
	"io"
	"strings"
	"sync"
	"time"
)

// progressBar draws a one-line progress bar on stderr when stderr is a
// terminal; otherwise every method does nothing. Safe for concurrent use.
type progressBar struct {
	w       io.Writer
	enabled bool
	label   string

	mu      sync.Mutex
	last    time.Time
	drawn   bool
	done    int64
	total   int64
	rows    int64
	state   string
	minStep time.Duration
}

func newProgressBar(a *app, label string) *progressBar {
	return &progressBar{w: a.stderr, enabled: a.stderrTTY, label: label, minStep: 100 * time.Millisecond}
}

// update records new figures (negative values keep the old ones) and
// redraws at most ten times a second.
func (p *progressBar) update(state string, done, total, rows int64) {
	if p == nil || !p.enabled {
		return
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if state != "" {
		p.state = state
	}
	if done >= 0 {
		p.done = done
	}
	if total >= 0 {
		p.total = total
	}
	if rows >= 0 {
		p.rows = rows
	}
	now := time.Now()
	if p.drawn && now.Sub(p.last) < p.minStep {
		return
	}
	p.last = now
	p.drawn = true
	fmt.Fprintf(p.w, "\r\033[K%s", renderProgress(p.label, p.state, p.done, p.total, p.rows))
}

// finish clears the bar so that later messages start on a clean line.
func (p *progressBar) finish() {
	if p == nil || !p.enabled {
		return
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.drawn {
		fmt.Fprint(p.w, "\r\033[K")
		p.drawn = false
	}
}

// renderProgress is the bar's text: "import [#####-----]  50%  1.0 MiB/2.0 MiB  1200 rows  PROCESSING".
func renderProgress(label, state string, done, total, rows int64) string {
	const width = 24
	var b strings.Builder
	b.WriteString(label)
	if total > 0 {
		frac := float64(done) / float64(total)
		frac = min(max(frac, 0), 1)
		n := int(frac * width)
		fmt.Fprintf(&b, " [%s%s] %3d%%  %s/%s", strings.Repeat("#", n), strings.Repeat("-", width-n), int(frac*100), humanBytes(done), humanBytes(total))
	} else if done > 0 {
		fmt.Fprintf(&b, "  %s", humanBytes(done))
	}
	if rows > 0 {
		fmt.Fprintf(&b, "  %d rows", rows)
	}
	if state != "" {
		fmt.Fprintf(&b, "  %s", state)
	}
	return b.String()
}

// humanBytes formats n as B, KiB, MiB or GiB.
func humanBytes(n int64) string {
	const unit = 1024
	if n < unit {
		return fmt.Sprintf("%d B", n)
	}
	div, exp := int64(unit), 0
	for m := n / unit; m >= unit && exp < 3; m /= unit {
		div *= unit
		exp++
	}
	return fmt.Sprintf("%.1f %ciB", float64(n)/float64(div), "KMGT"[exp])
}

// countingReader reports the bytes read through it to a progress bar.
type countingReader struct {
	r     io.Reader
	n     int64
	total int64
	bar   *progressBar
	state string
}

func (c *countingReader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.n += int64(n)
	c.bar.update(c.state, c.n, c.total, -1)
	return n, err
}

// countingWriter reports the bytes written through it to a progress bar.
type countingWriter struct {
	w     io.Writer
	n     int64
	total int64
	bar   *progressBar
}

func (c *countingWriter) Write(p []byte) (int, error) {
	n, err := c.w.Write(p)
	c.n += int64(n)
	c.bar.update("DOWNLOADING", c.n, c.total, -1)
	return n, err
}
