package jobs

import (
	"context"
	"errors"

	"github.com/bitkit-dev/bitkit/server/internal/tracing"
	"github.com/riverqueue/river"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/trace"
)

// traceRun starts the span of one run of a job (Config.Tracer set): a
// root span named name ("job.import", "job.export") linked to the request
// that created the job when that request was traced (traceparent, from
// the job's arguments). done ends it with the run's outcome: a run handed
// back (snoozed: no slot, no connection, bitd draining) is not a failure.
// Without a tracer it returns ctx and a done that does nothing.
func (s *Service) traceRun(ctx context.Context, name, jobID, traceparent string, attempt int) (context.Context, func(error)) {
	if s.cfg.Tracer == nil {
		return ctx, noTrace
	}
	opts := []trace.SpanStartOption{trace.WithSpanKind(trace.SpanKindConsumer), trace.WithNewRoot(),
		trace.WithAttributes(attribute.String("bitkit.job_id", jobID), attribute.Int("bitkit.job.attempt", attempt))}
	if l, ok := tracing.Link(traceparent); ok {
		opts = append(opts, trace.WithLinks(l))
	}
	ctx, sp := s.cfg.Tracer.Start(ctx, name, opts...)
	return ctx, func(err error) {
		var snooze *river.JobSnoozeError
		if errors.As(err, &snooze) {
			sp.SetAttributes(attribute.Bool("bitkit.job.handed_back", true))
			err = nil
		}
		tracing.End(sp, err)
	}
}

func noTrace(error) {}
