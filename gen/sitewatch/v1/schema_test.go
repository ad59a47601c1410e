package sitewatchv1

import (
	"os"
	"testing"
)

// The registered schema must be the very file the Go code was generated from.
func TestSchemaMatchesProtoSource(t *testing.T) {
	src, err := os.ReadFile("../../../proto/sitewatch/v1/check_result.proto")
	if err != nil {
		t.Fatal(err)
	}
	if Schema != string(src) {
		t.Fatal("gen/sitewatch/v1/check_result.proto differs from proto/sitewatch/v1/check_result.proto: run `task generate`")
	}
	if got := File_sitewatch_v1_check_result_proto.Messages().Get(0).FullName(); got != "sitewatch.v1.CheckResult" {
		t.Fatalf("first message is %s; CheckResult must stay first (records carry message index 0)", got)
	}
}
