// Package urlx is the part of net/url that core uses: URL, Values, Error,
// Parse, ParseQuery, PathEscape, QueryEscape.
//
// Native builds alias net/url itself. Under GOOS=js (the browser module and
// Cloudflare Workers) the small implementation in lite.go stands in for it:
// net/url with net/netip and unique adds about 70 KB gzipped to a wasm
// module. lite.go follows net/url's rules for the URLs a client handles
// (absolute http(s) URLs, paths, queries, relative references); its tests
// compare it with net/url on a table of inputs.
package urlx
