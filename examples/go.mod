module ddi.dev/ddi/examples

go 1.26.0

require ddi.dev/ddi/sdk v0.0.0

replace ddi.dev/ddi/sdk => ../sdk
