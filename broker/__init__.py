"""Broker administration: Mosquitto configuration, credentials and ACLs.

The broker itself is Eclipse Mosquitto; this package writes what it reads
(``mosquitto.conf``, the password file and the ACL file) so that each gateway
gets its own credentials and may touch only its own topics.
"""
