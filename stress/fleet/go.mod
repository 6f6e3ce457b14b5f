module github.com/bitkit-dev/bitkit/stress/fleet

go 1.26.0

replace (
	github.com/bitkit-dev/bitkit => ../../
	github.com/bitkit-dev/bitkit/pgdirect => ../../pgdirect
)

require (
	github.com/bitkit-dev/bitkit v0.0.0
	github.com/bitkit-dev/bitkit/pgdirect v0.0.0
	github.com/jackc/pgx/v5 v5.12.0
	github.com/johannesboyne/gofakes3 v1.2.0
)

require (
	github.com/jackc/pgpassfile v1.0.0 // indirect
	github.com/jackc/pgservicefile v0.0.0-20240606120523-5a60cdf6a761 // indirect
	github.com/jackc/puddle/v2 v2.2.3 // indirect
	github.com/ryszard/goskiplist v0.0.0-20150312221310-2dfbae5fcf46 // indirect
	go.shabbyrobe.org/gocovmerge v0.0.0-20230507111327-fa4f82cfbf4d // indirect
	golang.org/x/sync v0.22.0 // indirect
	golang.org/x/text v0.41.0 // indirect
	golang.org/x/tools v0.48.0 // indirect
)
