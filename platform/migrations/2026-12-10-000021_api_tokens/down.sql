DROP TABLE api_token_sites;
DROP TABLE api_tokens;
