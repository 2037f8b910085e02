"""The app floor: the ``villagewatch`` console command, the pilot-village demo and the local stack
(Mosquitto + InfluxDB as child processes). The only floor that imports every part of the platform."""
