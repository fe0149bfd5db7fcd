"""Network drivers: bridge (kernel bridge + veths + rules), host and null need no kernel work."""
