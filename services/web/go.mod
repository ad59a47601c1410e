module github.com/sitewatch/sitewatch/services/web

go 1.26.7

require (
	github.com/jackc/pgx/v5 v5.13.0
	github.com/sitewatch/sitewatch/services/internal v0.0.0
)

require (
	github.com/jackc/pgpassfile v1.0.0 // indirect
	github.com/jackc/pgservicefile v0.0.0-20240606120523-5a60cdf6a761 // indirect
	github.com/jackc/puddle/v2 v2.2.3 // indirect
	github.com/sitewatch/sitewatch/gen v0.0.0 // indirect
	github.com/stretchr/testify v1.12.1 // indirect
	golang.org/x/sync v0.25.0 // indirect
	golang.org/x/text v0.44.0 // indirect
	google.golang.org/protobuf v1.36.13-0.20261016172727-e9ee2a76ab8e // indirect
)

replace (
	github.com/sitewatch/sitewatch/gen => ../../gen
	github.com/sitewatch/sitewatch/migrations => ../../migrations
	github.com/sitewatch/sitewatch/services/internal => ../internal
	github.com/sitewatch/sitewatch/services/testing => ../testing
)
