module github.com/sitewatch/sitewatch/services/alerter

go 1.26.7

replace (
	github.com/sitewatch/sitewatch/gen => ../../gen
	github.com/sitewatch/sitewatch/migrations => ../../migrations
	github.com/sitewatch/sitewatch/services/internal => ../internal
	github.com/sitewatch/sitewatch/services/testing => ../testing
)
