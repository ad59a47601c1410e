module github.com/sitewatch/sitewatch/services/prober

go 1.26.7

replace (
	github.com/sitewatch/sitewatch/gen => ../../gen
	github.com/sitewatch/sitewatch/services/internal => ../internal
)
