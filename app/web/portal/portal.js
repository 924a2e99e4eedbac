// The portal: a client of the public GraphQL API only.
