#!/bin/bash
# feedpipe dev resources. LocalStack runs this once it is ready (Docker: mounted at
# /etc/localstack/init/ready.d). Host mode runs it with `LOCALSTACK_SEED=1 make localstack-up`,
# with AWSLOCAL set to the AWS CLI plus --endpoint-url.
# Safe to run again: creating an existing bucket or queue with the same attributes succeeds.
set -euo pipefail
awslocal=${AWSLOCAL:-awslocal}

# Names as template.yaml gives them for stack "feedpipe" in account 000000000000, us-east-1
# (e2e/template_test.go checks this list against the template).
buckets=(
	feedpipe-incoming-000000000000-us-east-1
	feedpipe-store-000000000000-us-east-1
)

standard_queues=(
	feedpipe-copy
	feedpipe-copy-dlq
)

fifo_queues=(
	feedpipe-import.fifo
	feedpipe-import-dlq.fifo
	feedpipe-sync.fifo
	feedpipe-sync-dlq.fifo
)

for b in "${buckets[@]}"; do
	$awslocal s3api create-bucket --bucket "$b" >/dev/null
	echo "bucket $b"
done
for q in "${standard_queues[@]}"; do
	$awslocal sqs create-queue --queue-name "$q" >/dev/null
	echo "queue  $q"
done
for q in "${fifo_queues[@]}"; do
	$awslocal sqs create-queue --queue-name "$q" --attributes FifoQueue=true >/dev/null
	echo "queue  $q"
done
