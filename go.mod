module github.com/kubectl-emqx/kubectl-emqx

go 1.26.0

require k8s.io/utils v0.0.0-20260707023825-cf1189d6abe3
