module github.com/sitewatch/sitewatch/migrations

go 1.26.7
