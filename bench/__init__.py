"""`make bench`: this server against a naive Flask baseline and an in-process upper bound."""
