// The one TanStack Query client. A 401 from any call means the token or session ended:
// asking /me again then shows the sign-in page.
import { QueryCache, QueryClient } from '@tanstack/react-query';
import { ApiProblem, isUnauthorized } from './problem';

export const ME_QUERY_KEY = ['me'] as const;

export function makeQueryClient(): QueryClient {
  const client: QueryClient = new QueryClient({
    queryCache: new QueryCache({
      onError(error, query) {
        if (isUnauthorized(error) && query.queryKey[0] !== ME_QUERY_KEY[0]) {
          void client.invalidateQueries({ queryKey: ME_QUERY_KEY });
        }
      },
    }),
    defaultOptions: {
      queries: {
        staleTime: 30_000,
        refetchOnWindowFocus: false,
        // A problem answer is the server's word: retrying a 4xx changes nothing.
        retry: (failures, error) => failures < 2 && !(error instanceof ApiProblem && error.status >= 400),
      },
    },
  });
  return client;
}
