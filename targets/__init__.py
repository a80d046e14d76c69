"""Device profiles (one TOML file per device) shipped with edgeprune."""
