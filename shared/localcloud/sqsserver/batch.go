package sqsserver

// checkBatchIDs validates the entry ids of a batch request as SQS does: at
// least one entry (EmptyBatchRequest), at most ten
// (TooManyEntriesInBatchRequest), ids of 1 to 80 characters of
// [A-Za-z0-9_-] (InvalidBatchEntryId), all distinct
// (BatchEntryIdsNotDistinct).
func checkBatchIDs(ids []*string, entryShape string) *apiError {
	if len(ids) == 0 {
		return newError(codeEmptyBatchRequest, "There should be at least one %s in the request.", entryShape)
	}
	if len(ids) > maxBatchEntries {
		return newError(codeTooManyEntriesInBatch, "Maximum number of entries per request are %d. You have sent %d.", maxBatchEntries, len(ids))
	}
	for i, id := range ids {
		if id == nil || *id == "" || len(*id) > 80 || !queueNameChars(*id) {
			return newError(codeInvalidBatchEntryID,
				"A batch entry id can only contain alphanumeric characters, hyphens and underscores. It can be at most 80 letters long.")
		}
		for _, prev := range ids[:i] {
			if *prev == *id {
				return newError(codeBatchEntryIdsNotDistinct, "Id %s repeated.", *id)
			}
		}
	}
	return nil
}

// batchFailure is a BatchResultErrorEntry.
type batchFailure struct {
	id  string
	err *apiError
}

// writeBatchResult writes {"Successful": [...], "Failed": [...]}; ok writes
// the members of one successful entry.
func writeBatchResult(w *jsonWriter, n int, ok func(i int), failed []batchFailure) {
	w.open()
	w.key("Successful")
	w.openArray()
	for i := 0; i < n; i++ {
		w.open()
		ok(i)
		w.close()
	}
	w.closeArray()
	w.key("Failed")
	w.openArray()
	for _, f := range failed {
		w.open()
		w.strField("Id", f.id)
		w.boolField("SenderFault", !errorSpecFor(f.err.code).receiver)
		w.strField("Code", batchCode(f.err))
		w.strField("Message", f.err.message)
		w.close()
	}
	w.closeArray()
	w.close()
}
