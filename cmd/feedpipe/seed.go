package main

import (
	"context"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/s3"

	"github.com/feedpipe/feedpipe/shared/apiauth"
	"github.com/feedpipe/feedpipe/shared/site"
)

// seedSite creates (or replaces) a development site whose token is token, or
// a new random one, and returns the token.
func seedSite(ctx context.Context, endpoint, region, accessKey, secretKey, bucket, name, token string) (string, error) {
	client := s3.New(s3.Options{Region: region, BaseEndpoint: aws.String(endpoint), UsePathStyle: true,
		Credentials: credentials.NewStaticCredentialsProvider(accessKey, secretKey, "")})
	hash := apiauth.Hash(token)
	if token == "" {
		token, hash = apiauth.NewToken()
	}
	cfg := site.Config{Site: name, TokenHashes: []string{hash}, CreatedAt: time.Now().UTC()}
	if err := site.Save(ctx, client, bucket, cfg); err != nil {
		return "", err
	}
	return token, nil
}
