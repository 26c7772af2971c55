"""The gateway's response cache (issue 15, part 1): an exact-match cache of replies per consumer
group (or organization), served without calling the provider. docs/gateway.md "Response cache".

- rules.py: a group's effective settings, carried by its key (GroupContext.cache);
- keys.py: the normalised request and its key; entry.py: what is stored;
- store.py (store_redis.py, store_embedded.py): where; flight.py: single flight;
- flow.py: the hook in gateway/proxy.py; hits.py: serving and charging a hit;
- config_section.py, services.py, admin.py: the settings, from the config file and the admin.
"""
