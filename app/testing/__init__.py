"""Stand-ins for peers that cannot run on this machine (an ESP32 ROM loader) and a helper that
starts a real Mosquitto with the production configuration for tests."""
