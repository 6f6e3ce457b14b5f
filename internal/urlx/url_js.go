//go:build js

package urlx

type (
	// URL is LiteURL.
	URL = LiteURL
	// Values is LiteValues.
	Values = LiteValues
	// Error is LiteError.
	Error = LiteError
	// Userinfo is LiteUserinfo.
	Userinfo = LiteUserinfo
)

// Parse is LiteParse.
func Parse(rawURL string) (*URL, error) { return LiteParse(rawURL) }

// ParseQuery is LiteParseQuery.
func ParseQuery(query string) (Values, error) { return LiteParseQuery(query) }

// PathEscape is LitePathEscape.
func PathEscape(s string) string { return LitePathEscape(s) }

// QueryEscape is LiteQueryEscape.
func QueryEscape(s string) string { return LiteQueryEscape(s) }
