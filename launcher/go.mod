module lifecycle.local/launcher

go 1.22
