module github.com/sitewatch/sitewatch/gen

go 1.26.7

require google.golang.org/protobuf v1.36.13-0.20261016172727-e9ee2a76ab8e
