package metrics

// Namespace is the CloudWatch namespace of every feedpipe metric.
const Namespace = "feedpipe"

// Dimension keys. DimFunction is on every line; the others are passed to
// Emit where their cardinality allows.
const (
	DimFunction    = "function"
	DimSite        = "site"
	DimDestination = "destination"
)

// Metric names. Functions emit them and template.yaml alarms on them; the
// e2e template test checks that every alarm names one a function emits.
const (
	// upload
	UploadsCreated = "UploadsCreated"
	BytesDeclared  = "BytesDeclared"

	// copy
	UploadsReceived = "UploadsReceived"
	BytesReceived   = "BytesReceived"
	CopyLatency     = "CopyLatency" // S3 event (PUT) time → queued, ms
	UploadsRejected = "UploadsRejected"

	// import
	ProductsUpserted = "ProductsUpserted"
	ProductsDeleted  = "ProductsDeleted"
	ProductsRejected = "ProductsRejected"
	ImportLag        = "ImportLag" // received (PUT) → imported, ms
	DeltasApplied    = "DeltasApplied"
	SitesHalted      = "SitesHalted"
	FullUploadsHeld  = "FullUploadsHeld"

	// sync
	SequencesExpired     = "SequencesExpired"
	SyncJobsPlanned      = "SyncJobsPlanned"
	SyncJobsDeduplicated = "SyncJobsDeduplicated"
	VersionsCollected    = "VersionsCollected" // catalog versions garbage-collected
	ShardsCollected      = "ShardsCollected"   // catalog shard objects garbage-collected
	CollectFailures      = "CollectFailures"   // sites whose collection failed (retried next run)

	// push
	PushDeliveries     = "PushDeliveries"
	PushRetries        = "PushRetries"
	PushFailures       = "PushFailures"
	DestinationBacklog = "DestinationBacklog" // catalog versions the destination is behind
)

// CloudWatch units (the MetricDatum Unit list) that feedpipe uses.
const (
	Count        = "Count"
	Bytes        = "Bytes"
	Milliseconds = "Milliseconds"
	None         = "None"
)

// units is the full CloudWatch unit list; Emit refuses any other unit.
var units = map[string]bool{
	"Seconds": true, "Microseconds": true, "Milliseconds": true,
	"Bytes": true, "Kilobytes": true, "Megabytes": true, "Gigabytes": true, "Terabytes": true,
	"Bits": true, "Kilobits": true, "Megabits": true, "Gigabits": true, "Terabits": true,
	"Percent": true, "Count": true,
	"Bytes/Second": true, "Kilobytes/Second": true, "Megabytes/Second": true, "Gigabytes/Second": true, "Terabytes/Second": true,
	"Bits/Second": true, "Kilobits/Second": true, "Megabits/Second": true, "Gigabits/Second": true, "Terabits/Second": true,
	"Count/Second": true, "None": true,
}

// ValidUnit reports whether u is on CloudWatch's unit list.
func ValidUnit(u string) bool { return units[u] }
