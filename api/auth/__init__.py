"""Authentication: signing keys, access tokens, and the one function that decides who is calling."""
