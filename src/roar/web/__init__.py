"""The web page: the registry in a browser, served by ROAR itself (no CDN, no build step)."""
