# Replica tests: HAProxy (TCP mode, round robin) in front of several bitd
# replicas' wire ports, the shape of a production fleet
# (stress/replicas_cancel_test.go). The package's default configuration has
# no frontend, so its service, if one starts, holds no port.
APT_PACKAGES+=(haproxy)
