package sitewatchv1

import _ "embed"

// Schema is the text of check_result.proto, the schema that producers register
// in the Schema Registry under the subject check-results-value.
//
// `task generate` exports it with `buf export` from proto/ beside the Go code
// that `buf generate` makes from the same file, and `task lint` fails when
// either is stale, so the registered schema and the encoded messages cannot
// drift apart.
//
//go:embed check_result.proto
var Schema string
