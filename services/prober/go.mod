module github.com/sitewatch/sitewatch/services/prober

go 1.26.7

replace (
	github.com/sitewatch/sitewatch/gen => ../../gen
	github.com/sitewatch/sitewatch/services/internal => ../internal
)

require (
	github.com/google/uuid v1.6.0
	github.com/sitewatch/sitewatch/gen v0.0.0
	go.yaml.in/yaml/v3 v3.0.6
	google.golang.org/protobuf v1.36.13-0.20261016172727-e9ee2a76ab8e
)
