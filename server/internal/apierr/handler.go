package apierr

import "net/http"

// HandlerFunc is bitd's one HTTP handler adapter: the handler writes its
// successful answer itself and returns nil, or returns the error to answer
// with instead. ServeHTTP answers a returned error with Write (its status,
// JSON body and Retry-After; 5xx causes logged with the request ID) and
// tells the ErrorCounter of the response writer, if there is one, the
// error's code. A handler that has started writing its answer must not
// return an error (it ends a stream with its own error line instead).
//
// Resources a handler holds are released by its defers, which run before
// ServeHTTP writes the error: an error answer needs none of them.
type HandlerFunc func(w http.ResponseWriter, r *http.Request) error

// ServeHTTP calls h and answers the error it returns.
func (h HandlerFunc) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if err := h(w, r); err != nil {
		code := write(w, r, err)
		if c := errorCounter(w); c != nil {
			c.CountError(code)
		}
	}
}

// ErrorCounter is implemented by a response writer that counts the error
// answers HandlerFunc writes through it (bitd's access log counts them by
// route: bitd_http_errors_total). CountError gets the answer's code, one of
// the API's fixed words ("not_found", "query_timeout", ...).
type ErrorCounter interface {
	CountError(code string)
}

// errorCounter finds the ErrorCounter among w and the writers it wraps
// (those with an Unwrap method, as http.ResponseController does), or nil.
func errorCounter(w http.ResponseWriter) ErrorCounter {
	for range 8 {
		switch x := w.(type) {
		case ErrorCounter:
			return x
		case interface{ Unwrap() http.ResponseWriter }:
			w = x.Unwrap()
		default:
			return nil
		}
	}
	return nil
}
