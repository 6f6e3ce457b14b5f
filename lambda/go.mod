module github.com/bitkit-dev/bitkit/lambda

go 1.26

replace github.com/bitkit-dev/bitkit => ../

require (
	github.com/aws/aws-lambda-go v1.55.1
	github.com/bitkit-dev/bitkit v0.0.0-00010101000000-000000000000
)

require github.com/goccy/go-json v0.12.0 // indirect
