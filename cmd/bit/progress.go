package main

import (
	"fmt"
	"io"
	"strings"
	"sync"
	"time"
	"unicode/utf8"
)

// progressBar draws a one-line progress bar on stderr when stderr is a
// terminal; otherwise every method does nothing. Safe for concurrent use.
//
// One bar spans every phase of a command (an import's upload and then the
// server's processing; an export's processing and then the download): each
// phase owns a share of the bar, so the bar only moves forward, and it stays
// on screen in its last state when the command ends.
type progressBar struct {
	w       io.Writer
	enabled bool
	label   string
	start   time.Time
	minStep time.Duration
	width   func() int // the terminal's columns (0: unknown); nil for unknown

	mu     sync.Mutex
	last   time.Time
	drawn  bool
	stale  bool // figures changed since the last drawing
	ended  bool
	phases []string // names of the phases, in order; len 1 when there is one
	phase  int      // the phase figures belong to
	frac   float64  // of the whole bar, never decreasing
	done   int64
	total  int64
	rows   int64
	state  string
}

// newProgressBar makes a bar for label whose phases share it equally; with no
// phases the whole bar is one phase.
func newProgressBar(a *app, label string, phases ...string) *progressBar {
	if len(phases) == 0 {
		phases = []string{label}
	}
	return &progressBar{w: a.stderr, enabled: a.stderrTTY, label: label, phases: phases,
		start: time.Now(), minStep: 100 * time.Millisecond, width: a.stderrWidth}
}

// update records new figures for phase (an index into the bar's phases;
// negative values keep the old figures) and redraws at most ten times a
// second. Figures of an earlier phase than the current one are ignored.
func (p *progressBar) update(phase int, state string, done, total, rows int64) {
	if p == nil || !p.enabled {
		return
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.ended || phase < p.phase {
		return
	}
	if phase > p.phase {
		p.phase = min(phase, len(p.phases)-1)
		p.done, p.total = 0, 0
		p.frac = max(p.frac, float64(p.phase)/float64(len(p.phases)))
	}
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
	if p.total > 0 {
		f := min(max(float64(p.done)/float64(p.total), 0), 1)
		p.frac = max(p.frac, (float64(p.phase)+f)/float64(len(p.phases)))
	}
	now := time.Now()
	if p.drawn && now.Sub(p.last) < p.minStep {
		p.stale = true
		return
	}
	p.drawLocked(now)
}

// complete fills the bar and draws it with state: the command succeeded.
func (p *progressBar) complete(state string) {
	if p == nil || !p.enabled {
		return
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.ended || (p.drawn && !p.stale && p.frac == 1 && p.state == state) {
		return // already on screen as it should end
	}
	p.frac, p.state = 1, state
	p.drawLocked(time.Now())
}

func (p *progressBar) drawLocked(now time.Time) {
	p.last = now
	p.drawn, p.stale = true, false
	width := 0
	if p.width != nil {
		width = p.width()
	}
	fmt.Fprintf(p.w, "\r\033[K%s", renderProgress(p.label, p.phaseLabel(), p.state, p.frac, p.done, p.total, p.rows, now.Sub(p.start), width))
}

// phaseLabel names the current phase when there are several.
func (p *progressBar) phaseLabel() string {
	if len(p.phases) < 2 {
		return ""
	}
	return p.phases[p.phase]
}

// finish draws the bar's last state (when not drawn yet) and ends its line, so that the bar stays
// visible and later messages start on a line of their own. Later calls do
// nothing.
func (p *progressBar) finish() {
	if p == nil || !p.enabled {
		return
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.ended {
		return
	}
	p.ended = true
	if p.drawn {
		if p.stale {
			p.drawLocked(time.Now())
		}
		fmt.Fprint(p.w, "\n")
	}
}

// renderProgress is the bar's text:
// "import [############------------]  50%  upload 512 B/1.0 KiB  1,200 rows  PROCESSING  0.4 s".
// With width > 0 it fits in width-1 columns (a full line would wrap and
// break the redraw): the bytes go first, then the time, then the rows, then
// the state; the bar and percentage always stay.
func renderProgress(label, phase, state string, frac float64, done, total, rows int64, elapsed time.Duration, width int) string {
	const barWidth = 24
	frac = min(max(frac, 0), 1)
	n := int(frac * barWidth)
	head := fmt.Sprintf("%s [%s%s] %3d%%", label, strings.Repeat("#", n), strings.Repeat("-", barWidth-n), int(frac*100))
	// The parts after the bar, in display order; drop lists which go first
	// when the line is too wide.
	var bytes, rowsPart string
	switch {
	case total > 0:
		bytes = humanBytes(done) + "/" + humanBytes(total)
	case done > 0:
		bytes = humanBytes(done)
	}
	if bytes != "" && phase != "" {
		bytes = phase + " " + bytes
	}
	if rows > 0 {
		rowsPart = groupDigits(rows) + " rows"
	}
	parts := []string{bytes, rowsPart, state, humanSeconds(elapsed)}
	drop := []int{0, 3, 1, 2}
	render := func() string {
		var b strings.Builder
		b.WriteString(head)
		for _, p := range parts {
			if p != "" {
				b.WriteString("  ")
				b.WriteString(p)
			}
		}
		return b.String()
	}
	out := render()
	for _, i := range drop {
		if width <= 0 || utf8.RuneCountInString(out) < width {
			break
		}
		parts[i] = ""
		out = render()
	}
	return out
}

// humanSeconds formats d as "0.9 s" (tenths below a minute) or "2m05s".
func humanSeconds(d time.Duration) string {
	if d < time.Minute {
		return fmt.Sprintf("%.1f s", d.Seconds())
	}
	return d.Truncate(time.Second).String()
}

// groupDigits formats n with thousands separators: 200000 → "200,000".
func groupDigits(n int64) string {
	s := fmt.Sprint(n)
	neg := strings.HasPrefix(s, "-")
	s = strings.TrimPrefix(s, "-")
	var b strings.Builder
	if neg {
		b.WriteByte('-')
	}
	for i, c := range s {
		if i > 0 && (len(s)-i)%3 == 0 {
			b.WriteByte(',')
		}
		b.WriteRune(c)
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

// countingReader reports the bytes read through it to phase of a progress
// bar.
type countingReader struct {
	r     io.Reader
	n     int64
	total int64
	bar   *progressBar
	phase int
	state string
}

func (c *countingReader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.n += int64(n)
	c.bar.update(c.phase, c.state, c.n, c.total, -1)
	return n, err
}

// countingWriter reports the bytes written through it to phase of a
// progress bar.
type countingWriter struct {
	w     io.Writer
	n     int64
	total int64
	bar   *progressBar
	phase int
}

func (c *countingWriter) Write(p []byte) (int, error) {
	n, err := c.w.Write(p)
	c.n += int64(n)
	c.bar.update(c.phase, "DOWNLOADING", c.n, c.total, -1)
	return n, err
}
