module ddi.dev/ddi

go 1.26
