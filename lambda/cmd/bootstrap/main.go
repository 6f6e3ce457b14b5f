// Command bootstrap is bitkit's AWS Lambda function for the provided.al2023
// runtime (amd64 and arm64): it serves package handler through the Lambda
// Runtime API. Build it with
//
//	CGO_ENABLED=0 GOOS=linux GOARCH=arm64 go build -tags lambda.norpc -trimpath -ldflags="-s -w" -o bootstrap ./cmd/bootstrap
//
// and ship the binary, named bootstrap, in a zip (make lambda does both).
// Configuration: BITKIT_ENDPOINT, and BITKIT_API_KEY or BITKIT_USERNAME +
// BITKIT_PASSWORD (see docs/serverless.md).
package main

import (
	"github.com/aws/aws-lambda-go/lambda"
	"github.com/bitkit-dev/bitkit/lambda/handler"
)

func main() {
	// The handler, its bitd client and token cache are created once per
	// execution environment and reused by every warm invocation.
	lambda.Start(handler.FromEnv())
}
