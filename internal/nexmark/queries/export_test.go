package queries

// RefQ19 is refQ19 for the external tests (comparison_test.go).
var RefQ19 = refQ19
