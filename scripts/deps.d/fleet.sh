# The fleet tests (make fleet, stress/fleet): HAProxy in front of the bitd
# replicas and Prometheus scraping them, both from Debian. deps.sh stops the
# system services these packages start; the tests run their own.
APT_PACKAGES+=(haproxy prometheus)
