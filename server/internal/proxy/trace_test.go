package proxy

import (
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/bitkit-dev/bitkit/internal/testwait"
	"go.opentelemetry.io/otel/codes"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
)

// TestSessionSpan: with a tracer, a session that reaches the relay is one
// "pg.session" span with its phase events and the database's name, and a
// refused password one failed span ending in the authorize phase; neither
// holds the password.
func TestSessionSpan(t *testing.T) {
	t.Parallel()
	f := sharedDB(t)
	auth := newTestAuth(f)
	key, _ := auth.key("w")
	rec := tracetest.NewSpanRecorder()
	tp := sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(rec))
	_, addr := startProxy(t, Config{AllowPlaintext: true, Tracer: tp.Tracer("test")}, auth)

	conn, err := connect(t, addr, key, testDB, "disable")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := conn.Exec(t.Context(), "SELECT 1"); err != nil {
		t.Fatal(err)
	}
	_ = conn.Close(t.Context())
	if _, err := connect(t, addr, "v2_wrong_password_for_the_span", testDB, "disable"); err == nil {
		t.Fatal("a wrong password connected")
	}

	var ok, refused sdktrace.ReadOnlySpan
	testwait.Eventually(t, 10*time.Second, func() error {
		ok, refused = nil, nil
		for _, sp := range rec.Ended() {
			switch {
			case sp.Name() != "pg.session":
			case sp.Status().Code == codes.Error:
				refused = sp
			default:
				ok = sp
			}
		}
		if ok == nil || refused == nil {
			return errSpans
		}
		return nil
	})
	var events []string
	for _, ev := range ok.Events() {
		events = append(events, ev.Name)
	}
	if got := strings.Join(events, ","); got != "authorized,backend connected,relaying" {
		t.Errorf("session events = %s", got)
	}
	attrs := map[string]string{}
	for _, kv := range ok.Attributes() {
		attrs[string(kv.Key)] = kv.Value.String()
	}
	if attrs["db.namespace"] != testDB || attrs["bitkit.session.phase"] != "relay" || attrs["db.system"] != "postgresql" {
		t.Errorf("session attributes = %v", attrs)
	}
	if !strings.Contains(refused.Status().Description, "authorize") {
		t.Errorf("refused session status = %q, want the authorize phase", refused.Status().Description)
	}
	for _, sp := range rec.Ended() {
		for _, kv := range sp.Attributes() {
			if v := kv.Value.String(); strings.Contains(v, key) || strings.Contains(v, "v2_wrong_password") {
				t.Errorf("span %s attribute %s holds the password", sp.Name(), kv.Key)
			}
		}
	}
}

var errSpans = errors.New("both sessions' spans have not ended yet")
