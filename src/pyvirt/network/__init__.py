"""Virtual networks on the host: bridges, dnsmasq (DHCP/DNS), leases and the nftables table."""
