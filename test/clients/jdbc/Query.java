// Runs each statement given as an argument through the official ClickHouse JDBC driver and prints
// what a JDBC tool would see: the database's tables and columns (metadata), then for each statement
// the column labels and types and the rows, tab-separated; a refused
// statement prints "ERROR <vendor code> <message>". Usage: java -cp 'jars/*' Query.java URL USER PASSWORD SQL...
import java.sql.Connection;
import java.sql.DatabaseMetaData;
import java.sql.DriverManager;
import java.sql.ResultSet;
import java.sql.ResultSetMetaData;
import java.sql.SQLException;
import java.sql.Statement;
import java.util.Properties;

public class Query {
  public static void main(String[] args) throws Exception {
    Properties props = new Properties();
    props.setProperty("user", args[1]);
    props.setProperty("password", args[2]);
    try (Connection conn = DriverManager.getConnection(args[0], props)) {
      DatabaseMetaData meta = conn.getMetaData();
      System.out.println("connected " + meta.getDatabaseProductName() + " " + meta.getDatabaseProductVersion());
      // What DBeaver and Metabase read first: the tables of the database and their columns.
      int tables = 0;
      int columns = 0;
      try (ResultSet rs = meta.getTables(null, conn.getSchema(), "%", null)) {
        while (rs.next()) tables++;
      }
      try (ResultSet rs = meta.getColumns(null, conn.getSchema(), "events_v1", "%")) {
        while (rs.next()) columns++;
      }
      System.out.println("metadata\t" + tables + " tables\t" + columns + " columns of events_v1");
      for (int i = 3; i < args.length; i++) {
        try (Statement st = conn.createStatement(); ResultSet rs = st.executeQuery(args[i])) {
          ResultSetMetaData md = rs.getMetaData();
          StringBuilder head = new StringBuilder("columns");
          for (int c = 1; c <= md.getColumnCount(); c++) head.append('\t').append(md.getColumnLabel(c)).append(':').append(md.getColumnTypeName(c));
          System.out.println(head);
          while (rs.next()) {
            StringBuilder row = new StringBuilder("row");
            for (int c = 1; c <= md.getColumnCount(); c++) row.append('\t').append(rs.getString(c));
            System.out.println(row);
          }
        } catch (SQLException e) {
          System.out.println("ERROR " + e.getErrorCode() + " " + e.getMessage().replace('\n', ' '));
        }
      }
    }
  }
}
