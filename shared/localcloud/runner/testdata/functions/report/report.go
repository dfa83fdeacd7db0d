// Package report lets the runner's test functions record what they did on
// the test stack's FIFO out queue, in order.
package report

import (
	"context"
	"encoding/json"
	"os"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/sqs"
)

// Send records v as one message on OUT_QUEUE_URL.
func Send(ctx context.Context, v any) error {
	client := sqs.New(sqs.Options{
		Region:       os.Getenv("AWS_REGION"),
		BaseEndpoint: aws.String(os.Getenv("AWS_ENDPOINT_URL")),
		Credentials:  credentials.NewStaticCredentialsProvider(os.Getenv("AWS_ACCESS_KEY_ID"), os.Getenv("AWS_SECRET_ACCESS_KEY"), ""),
	})
	body, err := json.Marshal(v)
	if err != nil {
		return err
	}
	_, err = client.SendMessage(ctx, &sqs.SendMessageInput{
		QueueUrl: aws.String(os.Getenv("OUT_QUEUE_URL")), MessageBody: aws.String(string(body)),
		MessageGroupId: aws.String("out"),
	})
	return err
}
