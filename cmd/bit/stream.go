package main

import (
	"bytes"
	"context"
	"fmt"
	"io"

	"github.com/bitkit-dev/bitkit/core"
	"github.com/bitkit-dev/bitkit/internal/jsonx"
)

// streamQuery runs req through core.QueryStream and writes each row as it
// arrives (ndjson: one JSON array or object per line; csv: a header and one
// record per row), so memory stays flat however many rows come back.
func streamQuery(ctx context.Context, c *core.Client, req core.QueryRequest, w io.Writer, format string, objects bool) error {
	s, err := c.QueryStream(ctx, req)
	if err != nil {
		return err
	}
	defer s.Close()
	names := columnNames(s.Columns())
	if format == fmtCSV && len(names) > 0 {
		hdr := make([]any, len(names))
		for i, n := range names {
			hdr[i] = n
		}
		if err := writeCSVRecord(w, hdr); err != nil {
			return err
		}
	}
	var line bytes.Buffer
	for s.Next() {
		vals := s.Row().Values()
		if format == fmtCSV {
			if err := writeCSVRecord(w, vals); err != nil {
				return err
			}
			continue
		}
		line.Reset()
		if objects {
			if err := appendObject(&line, names, vals); err != nil {
				return err
			}
		} else {
			b, err := jsonx.Marshal(vals)
			if err != nil {
				return fmt.Errorf("encode row: %w", err)
			}
			line.Write(b)
		}
		line.WriteByte('\n')
		if _, err := w.Write(line.Bytes()); err != nil {
			return err
		}
	}
	return s.Err()
}
