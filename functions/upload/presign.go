package main

import (
	"context"
	"net/http"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	v4 "github.com/aws/aws-sdk-go-v2/aws/signer/v4"
	"github.com/aws/aws-sdk-go-v2/service/s3"
)

// s3Presigner presigns upload PUTs with every header kept as a signed
// header: the SDK's presigner would hoist x-amz-checksum-* into the query
// string, where S3 does not enforce it (aws-sdk-go-v2 #2610).
type s3Presigner struct {
	client *s3.Client
}

var _ presigner = s3Presigner{}

// fixedTimeSigner signs at a given time (the request's, from its event)
// instead of the SDK's wall clock, so the runner's clock governs expiry.
type fixedTimeSigner struct {
	signer *v4.Signer
	at     time.Time
}

func (f fixedTimeSigner) PresignHTTP(ctx context.Context, creds aws.Credentials, r *http.Request, payloadHash, service, region string, _ time.Time, optFns ...func(*v4.SignerOptions)) (string, http.Header, error) {
	return f.signer.PresignHTTP(ctx, creds, r, payloadHash, service, region, f.at, append(optFns, func(o *v4.SignerOptions) {
		o.DisableHeaderHoisting = true
	})...)
}

func (p s3Presigner) PresignPut(ctx context.Context, in *s3.PutObjectInput, expires time.Duration, signedAt time.Time) (string, http.Header, error) {
	pc := s3.NewPresignClient(p.client, func(o *s3.PresignOptions) {
		o.Presigner = fixedTimeSigner{signer: v4.NewSigner(), at: signedAt}
		o.Expires = expires
	})
	req, err := pc.PresignPutObject(ctx, in)
	if err != nil {
		return "", nil, err
	}
	return req.URL, req.SignedHeader, nil
}
