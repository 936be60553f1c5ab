module gotar

go 1.26
