// Command myfunc is a Lambda handler shaped as a developer writes one on
// bitkit's Go client: an API Gateway (HTTP API) event in, rows or an error
// out, the error mapped with fnhttp as bitkit's own function maps it. The
// lambdatest tests run it through the Runtime API stand-in.
package main

import (
	"context"
	"encoding/json"
	"os"

	"github.com/aws/aws-lambda-go/events"
	"github.com/aws/aws-lambda-go/lambda"

	"github.com/bitkit-dev/bitkit/core"
	"github.com/bitkit-dev/bitkit/fnhttp"
)

var client *core.Client

func handle(ctx context.Context, ev events.APIGatewayV2HTTPRequest) (events.APIGatewayV2HTTPResponse, error) {
	res, err := client.Query(ctx, os.Getenv("MYFUNC_DATABASE"), "select id, name from users where id = $1", ev.QueryStringParameters["id"])
	if err != nil {
		status, body := fnhttp.Status(err)
		return events.APIGatewayV2HTTPResponse{StatusCode: status, Body: string(body),
			Headers: map[string]string{"Content-Type": "application/json"}}, nil
	}
	body, err := json.Marshal(map[string]any{"rows": res.Rows})
	if err != nil {
		return events.APIGatewayV2HTTPResponse{}, err
	}
	return events.APIGatewayV2HTTPResponse{StatusCode: 200, Body: string(body),
		Headers: map[string]string{"Content-Type": "application/json"}}, nil
}

func main() {
	var err error
	client, err = core.NewClient(os.Getenv("BITKIT_ENDPOINT"), core.WithAPIKey(os.Getenv("BITKIT_API_KEY")))
	if err != nil {
		panic(err) // reported to the Runtime API as an init error
	}
	lambda.Start(handle)
}
